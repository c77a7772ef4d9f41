"""SelfHVD and the Ren et al. baseline as benchmark methods: each trains on the clip, then deblurs it.

Options (a suite's `options = {...}`): `budget` (steps, "5m", "90s"; default `deblur`'s),
`weights` (what training starts from: "scratch", a fresh network, by default as in `deblur`; or
a model file, with `budget = 0` applied as it is), `fidelity` (true: `deblur --fidelity`, no
network), any
`TrainSettings` field (`sevd`, `scscm`, `model`, `seed`, ...) and any `AnalysisSettings` field
(`sharpness_measure`, `label_scale`, ...). Each run starts from an empty
work directory, so its wall time covers the whole job: analysis, training and inference.
"""

from __future__ import annotations

import tempfile
from dataclasses import fields

from ..errors import VidrestoreError
from ..io import EncodeSettings
from .methods import MethodCall, register_method


def _run(call: MethodCall, **fixed) -> None:
    from ..selfhvd.analysis import AnalysisSettings
    from ..selfhvd.deblur import DEFAULT_BUDGET, deblur
    from ..selfhvd.train import Budget, TrainSettings

    opts = {**call.options, **fixed}
    budget = Budget.parse(str(opts.pop("budget"))) if "budget" in opts else DEFAULT_BUDGET
    weights = str(opts.pop("weights", "scratch"))
    fidelity = bool(opts.pop("fidelity", False))
    train_names, analysis_names = {f.name for f in fields(TrainSettings)}, {f.name for f in fields(AnalysisSettings)}
    unknown = sorted(set(opts) - train_names - analysis_names)
    if unknown:
        raise VidrestoreError(f"unknown option(s) {', '.join(unknown)}; allowed: budget, weights, fidelity, "
                              f"{', '.join(sorted(train_names | analysis_names))}")
    analysis = AnalysisSettings(**{k: opts.pop(k) for k in list(opts) if k in analysis_names})
    with tempfile.TemporaryDirectory(dir=call.work_dir) as scratch:
        report = deblur(call.input, call.output, model=None if weights == "scratch" else weights, budget=budget, settings=TrainSettings(**opts), analysis=analysis,
                        encode=EncodeSettings("ffv1"), fidelity=fidelity,
                        overwrite=True, work_dir=scratch, progress=call.progress)
    if report.training:
        call.timings["train_s"] = report.training["train_seconds"]
        call.timings["steps"] = report.training["steps"]


@register_method("selfhvd", description="SelfHVD trained on the clip itself (options: budget, weights, sevd, scscm, model, ...)",
                 trains=True)
def _selfhvd(call: MethodCall) -> None:
    _run(call)


@register_method("ren", description="Ren et al. 'fitting to test data': the same network trained on the clip's sharp frames "
                 "blurred with random motion kernels", trains=True)
def _ren(call: MethodCall) -> None:
    _run(call, recipe="ren", sevd=False, scscm=False, weights="scratch")
