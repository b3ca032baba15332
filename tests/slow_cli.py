"""The ``dfr`` command line slowed down at one stage, so that a test can stop it half-way.

``python -m tests.slow_cli STAGE ARGS...`` runs ``dfr ARGS...`` and prints ``started`` when
STAGE begins:

- ``fit``: every model's ``fit``, which then trains as usual;
- ``predict``: the first result handed to the output writer; each result then waits 1 s;
- ``bench``: the suite with two tiny DFR models ``a`` and ``b``; ``started`` when ``b``
  begins, which then waits 60 s (``a`` has finished by then);
- ``resume``: the same suite at full speed (to finish an interrupted ``bench``).
"""
import sys
import time

from benchmarks import cli, models, suite
from dfr import DFR, model, outputs


def _started() -> None:
    print("started", flush=True)


def _slow_fit(fit):
    def slowed(self, *args, **kwargs):
        _started()
        return fit(self, *args, **kwargs)
    return slowed


def _slow_add(add):
    def slowed(writer, *args, **kwargs):
        if not writer.stems:
            _started()
        add(writer, *args, **kwargs)
        time.sleep(1.0)
    return slowed


def _slow_second_run(run_one):
    def slowed(task, spec, *args, **kwargs):
        if spec.name == "b":
            _started()
            time.sleep(60.0)
        return run_one(task, spec, *args, **kwargs)
    return slowed


def _tiny_specs(vgg_weights):
    def build(task, seed):
        return DFR(weights=None, image_size=32, layers=("relu1_2", "relu2_2", "relu3_4"), epochs=2, seed=seed)
    return {name: models.ModelSpec(name, f"tiny DFR {name}", ("mvtec",), build) for name in ("a", "b")}


def main(stage: str, argv: list[str]) -> int:
    if stage == "fit":
        model.AnomalyModel.fit = _slow_fit(model.AnomalyModel.fit)
    elif stage == "predict":
        outputs.PredictionWriter.add = _slow_add(outputs.PredictionWriter.add)
    elif stage in ("bench", "resume"):
        models.model_specs = _tiny_specs
        if stage == "bench":
            suite.run_one = _slow_second_run(suite.run_one)
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
