"""Optical flow behind one interface, backward warping with validity masks, consistency masks.

Convention everywhere: ``flow = estimate(a, b)`` holds, for each pixel p of `a`, the displacement d
with a(p) ~ b(p + d). `backward_warp(b, flow)` therefore brings `b` into `a`'s pixel grid.
"""

from .estimators import FlowEstimator, create_flow, list_flows
from .warp import backward_warp, fb_consistency_error, occlusion_mask, remap, resize_field

__all__ = ["FlowEstimator", "backward_warp", "create_flow", "fb_consistency_error", "list_flows", "occlusion_mask", "remap", "resize_field"]
