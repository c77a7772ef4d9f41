"""Classical baselines as benchmark methods: the pipeline stages a user would run."""

from .methods import stage_method

stage_method("identity", "identity", "the degraded input itself (re-encoded losslessly)")
stage_method("unsharp", "unsharp", "unsharp mask, sigma 1.5 px, amount 0.8")
stage_method("lucky", "lucky", "lucky-frame fusion: sharper neighbours within 3 frames, flow-aligned, weighted by sharpness")
