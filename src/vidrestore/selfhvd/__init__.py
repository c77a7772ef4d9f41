"""SelfHVD (Xu et al., CVPR 2026): self-supervised handheld video deblurring from the video itself.

* `selection`: per-frame sharpness and the sharp-frame selection (Otsu per block of frames);
* `labels`: the masks that say where a sharp frame warped onto a blurry one can supervise it;
* `analysis`: one cached pass over a video: frames, sharpness, flows, labels.
"""

from .analysis import AnalysisSettings, VideoAnalysis, analyze_video
from .selection import Selection, frame_sharpness, select_sharp

__all__ = ["AnalysisSettings", "Selection", "VideoAnalysis", "analyze_video", "frame_sharpness", "select_sharp"]
