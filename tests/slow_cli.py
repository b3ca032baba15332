"""The ``dfr`` command line slowed down at one stage, so that a test can stop it half-way.

``python -m tests.slow_cli STAGE ARGS...`` runs ``dfr ARGS...`` and prints ``started`` when
STAGE begins:

- ``fit``: every model's ``fit``, which then trains as usual;
- ``predict``: the first result handed to the output writer, which then waits until the file
  named by the environment variable ``DFR_TEST_GATE`` exists (when it is set; at most 60 s),
  and 1 s after each result;
- ``bench``: the suite with two tiny DFR models ``a`` and ``b``; ``started`` once ``b``'s run
  folder exists, then ``b`` waits 60 s before it is built (``a`` has finished by then);
- ``resume``: the same suite at full speed (to finish an interrupted ``bench``).
"""
import os
import sys
import time
from pathlib import Path

from dfr import DFR
from dfr.api.model import AnomalyModel
from dfr.cli import app, evaluation
from dfr.evaluation.models import BenchModel
from dfr.outputs.writer import PredictionWriter


def _started() -> None:
    print("started", flush=True)


def _slow_fit(fit):
    def slowed(self, *args, **kwargs):
        _started()
        return fit(self, *args, **kwargs)
    return slowed


def _slow_add(add):
    def slowed(writer, *args, **kwargs):
        first = not writer.stems
        add(writer, *args, **kwargs)
        if first:
            _started()
            gate, waited = os.environ.get("DFR_TEST_GATE"), 0.0
            while gate and not Path(gate).exists() and waited < 60:
                time.sleep(0.1)
                waited += 0.1
        time.sleep(1.0)
    return slowed


def _tiny_models(slow_b: bool):
    def build(seed, name):
        if name == "b" and slow_b:  # run_one has made b's run folder
            _started()
            time.sleep(60.0)
        return DFR(weights=None, image_size=32, layers=("relu1_2", "relu2_2", "relu3_4"), epochs=2, seed=seed)

    def models(names, vgg_weights, **options):
        return [BenchModel(name, f"tiny DFR {name}", ("mvtec",), lambda scoring, seed, name=name: build(seed, name))
                for name in ("a", "b")]
    return models


def main(stage: str, argv: list[str]) -> int:
    if stage == "fit":
        AnomalyModel.fit = _slow_fit(AnomalyModel.fit)
    elif stage == "predict":
        PredictionWriter.add = _slow_add(PredictionWriter.add)
    elif stage in ("bench", "resume"):
        evaluation.bench_models = _tiny_models(slow_b=stage == "bench")
    return app.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
