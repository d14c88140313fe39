"""The GPU check: one command that tests and measures tinydl on an NVIDIA GPU, in under 8 minutes, offline.

    python benchmarks/gpu_check.py RESULTS_DIR [--data-dir data]
    python benchmarks/gpu_check.py RESULTS_DIR --dry-run            # the same code paths on the CPU, quickly

Prerequisites on the GPU machine: CuPy (e.g. cupy-cuda13x 14), PyTorch with CUDA, pytest and hypothesis, tinydl
installed with ``pip install --no-deps -e .`` from this working tree, and no network. For part (c), CIFAR-10 in
the official binary layout inside the working tree, in an ignored folder: ``data/cifar-10-batches-bin`` (made by
``python3 /work/shared/data/make_cifar10_bin.py data`` on our development machines, or copied there).

Parts, each in its own subprocess with its own time limit, so that one failure or hang loses nothing else:

(a) the GPU test set on the real GPU (``pytest -m gpu``: the catalogue's GPU parity, the fused-kernel parity and
    speed tests, the CuPy-double tests that run on real CuPy where a GPU is present), twice: fused kernels on,
    and off (``TINYDL_FUSED_KERNELS=0``); pass/fail/skip counts and every failure's name;
(b) in one process: the training-step times of the article's CNN (batch 64), the char-LSTM (batch 32, sequence
    100) and the GPT-style Transformer LM (batch 32, context 128) against PyTorch CUDA, with the models and shapes
    of benchmarks/bench_cnn.py and benchmarks/bench_sequence_models.py, fused kernels on and off, interleaved
    trials synchronised with the device, medians and ratios; then each fused kernel against its plain path at
    the benchmark shapes (tinydl.testing.fused);
(c) one epoch of the article's CNN on CIFAR-10 on the GPU (examples/cnn_cifar10.py --recipe article --epochs 1)
    and its test accuracy; skipped, with a line that says how to prepare the data, when the data is absent.

Writes RESULTS_DIR/gpu_check.md (tables) and RESULTS_DIR/gpu_check.json (every figure), plus each part's log and
pytest's JUnit XML. Record the tables in benchmarks/README.md with the date and the GPU.

``--dry-run`` runs every part on the CPU with tiny sizes (tinydl on NumPy, PyTorch on the CPU; pytest on the
fusion-switch tests only): a smoke test of this script, not a measurement.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any, Callable

BENCHMARKS = Path(__file__).resolve().parent
ROOT = BENCHMARKS.parent
EXAMPLES = ROOT / "examples"
TOTAL_SECONDS = 420                                        # the whole check stays under 8 minutes
PART_SECONDS = {"tests_fused": 165, "tests_plain": 75, "models": 120, "cifar": 90}
INTERRUPT_GRACE_SECONDS = 10                               # after the limit: SIGINT, then this long, then SIGKILL
DRY_RUN_SECONDS = {"tests_fused": 60, "tests_plain": 60, "models": 120, "cifar": 60}
GPU_TESTS = ["-m", "gpu", "tests"]                          # the GPU test set (marker gpu)
DRY_RUN_TESTS = ["tests/core/test_fused_switch.py::test_set_fused_kernels_and_context_manager"]
PREPARE_DATA = ("python3 /work/shared/data/make_cifar10_bin.py data   (writes data/cifar-10-batches-bin; or copy "
                "an existing cifar-10-batches-bin folder into data/)")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results_dir", type=Path, help="where gpu_check.md, gpu_check.json and the logs go")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data",
                        help="folder holding cifar-10-batches-bin, for part (c) (default: data/ in the tree)")
    parser.add_argument("--dry-run", action="store_true",
                        help="run the same code paths on the CPU with tiny sizes (a smoke test, no GPU needed)")
    parser.add_argument("--parts", default="tests,models,cifar",
                        help="comma-separated subset of tests,models,cifar (default: all three)")
    parser.add_argument("--part", choices=("models",), help=argparse.SUPPRESS)     # internal: a child process
    parser.add_argument("--part-output", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------------------- running parts
def run_child(name: str, command: list[str], seconds: float, log: Path, environment: dict[str, str] | None = None
              ) -> dict[str, Any]:
    """Run one part's subprocess with a time limit; its output goes to ``log``. Returns status and seconds."""
    start = time.perf_counter()
    env = dict(os.environ, **(environment or {}))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with open(log, "w") as handle:
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
        try:
            code = child.wait(timeout=max(seconds, 1))
            status = "ok" if code == 0 else f"exit code {code}"
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGINT)   # pytest then stops and still writes its report
            try:
                child.wait(timeout=INTERRUPT_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            status = f"stopped at its time limit of {seconds:.0f} s"
    elapsed = time.perf_counter() - start
    print(f"  {name}: {status} in {elapsed:.0f} s (log: {log})", flush=True)
    return {"status": status, "seconds": round(elapsed, 1), "log": str(log)}


def junit_summary(path: Path) -> dict[str, Any]:
    """Counts and failures from pytest's JUnit XML, and the speed-ups the fused-kernel tests recorded."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    failures, speedups = [], {}
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            counts["failed"] += 1
            failures.append(name)
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
        for prop in case.iter("property"):
            if prop.get("name") == "speedup":
                speedups[case.get("name")] = float(prop.get("value"))
    return {**counts, "failures": failures, "recorded_speedups": speedups}


def part_tests(args: argparse.Namespace, limits: Callable[[str], float]) -> dict[str, Any]:
    """(a): the GPU tests with fused kernels on, then off."""
    results = {}
    selection = DRY_RUN_TESTS if args.dry_run else GPU_TESTS
    for key, switch in (("tests_fused", "1"), ("tests_plain", "0")):
        xml = args.results_dir / f"pytest_{key}.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                   f"--junitxml={xml}", *selection]
        result = run_child(f"(a) pytest, TINYDL_FUSED_KERNELS={switch}", command, limits(key),
                           args.results_dir / f"{key}.log", {"TINYDL_FUSED_KERNELS": switch})
        try:
            result.update(junit_summary(xml))
        except (OSError, ElementTree.ParseError) as error:
            result["error"] = f"no JUnit report: {error}"
        results[key] = result
    return results


def part_models(args: argparse.Namespace, limits: Callable[[str], float]) -> dict[str, Any]:
    """(b): a child process of this script runs the model and kernel timings and writes their JSON."""
    output = args.results_dir / "models.json"
    output.unlink(missing_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), str(args.results_dir), "--part", "models",
               "--part-output", str(output)] + (["--dry-run"] if args.dry_run else [])
    result = run_child("(b) training steps and fused kernels", command, limits("models"),
                       args.results_dir / "models.log")
    if output.exists():
        result.update(json.loads(output.read_text()))
    return result


def part_cifar(args: argparse.Namespace, limits: Callable[[str], float]) -> dict[str, Any]:
    """(c): one epoch of the article's CNN on CIFAR-10 and its test accuracy."""
    data = args.data_dir.resolve()
    if not (data / "cifar-10-batches-bin").is_dir() and not (data / "cifar-10-batches-py").is_dir():
        line = f"(c) skipped: no CIFAR-10 in {data}; to prepare it: {PREPARE_DATA}"
        print(f"  {line}", flush=True)
        return {"status": "skipped", "reason": line}
    command = [sys.executable, str(EXAMPLES / "cnn_cifar10.py"), "--recipe", "article", "--epochs", "1",
               "--data-dir", str(data), "--checkpoint-dir", str(args.results_dir / "checkpoints"),
               "--device", "cpu" if args.dry_run else "cuda"]
    if args.dry_run:
        command += ["--limit-train", "128", "--limit-test", "64"]
    log = args.results_dir / "cifar.log"
    result = run_child("(c) one epoch of the article's CNN", command, limits("cifar"), log)
    found = re.findall(r"test accuracy: ([0-9.]+)%", log.read_text())
    result["test_accuracy_percent"] = float(found[-1]) if found else None
    result["command"] = " ".join(command[1:])
    return result


# ------------------------------------------------------------------------- part (b), inside the child process
def _synchronizer(device: str, torch: Any) -> tuple[Callable[[], None], Callable[[], None]]:
    """Functions that wait for the device's queued work: tinydl's (CuPy) and PyTorch's."""
    if device == "cpu":
        return (lambda: None), (lambda: None)
    import cupy
    return cupy.cuda.Device().synchronize, torch.cuda.synchronize


def _load_benchmark(module: str) -> Any:
    """Import a benchmark script for its model builders; they parse the command line on import: hand them one."""
    command_line = sys.argv
    sys.argv = [f"{module}.py", "--quick"]
    try:
        sys.path[:0] = [str(BENCHMARKS), str(EXAMPLES), str(EXAMPLES / "torch_reference")]
        return __import__(module)
    finally:
        sys.argv = command_line


def model_pairs(torch: Any, device: str, dry_run: bool) -> list[tuple[str, Any, Any, tuple[Any, Any], int]]:
    """(name, tinydl model, PyTorch twin with the same weights, (inputs, targets) as NumPy arrays, classes) for
    the three models, built on the CPU by the benchmarks' own builders."""
    import numpy as np
    import tinydl
    bench_cnn, sequences = _load_benchmark("bench_cnn"), _load_benchmark("bench_sequence_models")
    rng = np.random.default_rng(0)
    pairs = []
    tinydl.manual_seed(0)
    cnn = bench_cnn.Net()
    cnn_twin = bench_cnn.torch_net(torch, cnn)
    batch = 4 if dry_run else bench_cnn.TRAIN_BATCH
    images = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, batch)
    pairs.append((f"article CNN step (batch {batch})", cnn, cnn_twin, (images, labels), 10))
    for key in ("a", "b"):
        name, build, twin_module, length, _ = sequences.MODELS[key]
        tinydl.manual_seed(0)
        model = build()
        twin_class = __import__(twin_module)
        twin = twin_class.CharRNN(sequences.VOCAB, "lstm", sequences.char_rnn.Recipe()) if key == "a" else \
            twin_class.GPT(sequences.VOCAB, sequences.gpt_char.Recipe())
        twin.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
        batch = 2 if dry_run else sequences.BATCH
        ids = rng.integers(1, sequences.VOCAB, (batch, length + 1))
        label = ("char-LSTM" if key == "a" else "Transformer LM") + f" step (batch {batch}, sequence {length})"
        pairs.append((label, model, twin, (ids[:, :-1], ids[:, 1:].reshape(-1)), sequences.VOCAB))
    return pairs


def step_functions(torch: Any, device: str, model: Any, twin: Any, batch: tuple, classes: int
                   ) -> tuple[Callable[[], float], Callable[[], float], Callable[[], None], Callable[[], None]]:
    """One Adam training step of each library on ``device`` (forward, cross-entropy, backward, update)."""
    import tinydl
    import tinydl.functional as F
    model.to(device)
    twin.to(device)
    inputs, targets = batch
    ours_in, ours_target = tinydl.tensor(inputs, device=device), tinydl.tensor(targets, device=device)
    their_in, their_target = torch.from_numpy(inputs).to(device), torch.from_numpy(targets).to(device)
    optimizer = tinydl.optim.Adam(model.parameters(), lr=1e-3)
    peer_optimizer = torch.optim.Adam(twin.parameters(), lr=1e-3)

    def logits(output: Any) -> Any:
        return output[0] if isinstance(output, tuple) else output

    def ours() -> Any:
        loss = F.cross_entropy(logits(model(ours_in)).reshape(-1, classes), ours_target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    def theirs() -> Any:
        loss = torch.nn.functional.cross_entropy(logits(twin(their_in)).reshape(-1, classes), their_target)
        peer_optimizer.zero_grad()
        loss.backward()
        peer_optimizer.step()
        return loss

    sync_ours, sync_theirs = _synchronizer(device, torch)
    return ours, theirs, sync_ours, sync_theirs


def timed(function: Callable[[], Any], synchronize: Callable[[], None]) -> float:
    synchronize()
    start = time.perf_counter()
    function()
    synchronize()
    return (time.perf_counter() - start) * 1000


def measure_models(torch: Any, device: str, dry_run: bool) -> list[dict[str, Any]]:
    """Median step times of tinydl (fused kernels on, then off) and PyTorch, trials interleaved."""
    from tinydl.backend import set_fused_kernels
    trials, warmup = (1, 0) if dry_run else (15, 3)
    rows = []
    for name, model, twin, batch, classes in model_pairs(torch, device, dry_run):
        ours, theirs, sync_ours, sync_theirs = step_functions(torch, device, model, twin, batch, classes)
        first = (float(ours().item()), float(theirs().item()))
        times: dict[str, list[float]] = {"fused": [], "plain": [], "torch": []}
        for trial in range(warmup + trials):
            for label in times:
                if label == "torch":
                    elapsed = timed(theirs, sync_theirs)
                else:
                    with set_fused_kernels(label == "fused"):
                        elapsed = timed(ours, sync_ours)
                if trial >= warmup:
                    times[label].append(elapsed)
        medians = {label: statistics.median(values) for label, values in times.items()}
        rows.append({"model": name, "first_loss_tinydl": first[0], "first_loss_torch": first[1],
                     "tinydl_fused_ms": medians["fused"], "tinydl_plain_ms": medians["plain"],
                     "torch_ms": medians["torch"], "ratio_fused": medians["fused"] / medians["torch"],
                     "ratio_plain": medians["plain"] / medians["torch"]})
        print(f"{name}: tinydl fused {medians['fused']:.2f} ms, plain {medians['plain']:.2f} ms, torch "
              f"{medians['torch']:.2f} ms", flush=True)
    return rows


def measure_kernels(device: str, dry_run: bool) -> list[dict[str, Any]]:
    """Each fused kernel against its plain path (tinydl.testing.fused), float32, at the benchmark shapes."""
    from tinydl.testing.fused import CASES, time_both
    rows = []
    for case in CASES:
        fused_ms, plain_ms = time_both(case, device, size="small" if dry_run else "benchmark",
                                       trials=1 if dry_run else 10, warmup=0 if dry_run else 2)
        rows.append({"kernel": case.name, "family": case.kernel, "fused_ms": fused_ms, "plain_ms": plain_ms,
                     "speedup": plain_ms / fused_ms})
        print(f"{case.name}: fused {fused_ms:.3f} ms, plain {plain_ms:.3f} ms", flush=True)
    return rows


def models_child(args: argparse.Namespace) -> None:
    import torch
    device = "cpu" if args.dry_run else "cuda"
    if args.dry_run:
        torch.set_num_threads(1)
    result: dict[str, Any] = {}
    for key, measure in (("models", lambda: measure_models(torch, device, args.dry_run)),
                         ("kernels", lambda: measure_kernels(device, args.dry_run))):
        try:
            result[key] = measure()
        except Exception:                  # keep the other half's figures
            result[f"{key}_error"] = traceback.format_exc()
            print(result[f"{key}_error"], flush=True)
        args.part_output.write_text(json.dumps(result, indent=2))


# -------------------------------------------------------------------------------------------------- report
def environment(dry_run: bool) -> dict[str, Any]:
    info: dict[str, Any] = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                            "python": platform.python_version(), "dry_run": dry_run}
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                        text=True).stdout.strip()
    except OSError:
        pass
    for module in ("numpy", "cupy", "torch"):
        try:
            info[module] = __import__(module).__version__
        except Exception as error:
            info[module] = f"unavailable ({type(error).__name__})"
    if not dry_run:
        try:
            import cupy
            info["gpu"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
            info["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        except Exception as error:
            info["gpu"] = f"unavailable ({error})"
    return info


def _ms(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def markdown(report: dict[str, Any]) -> str:
    info = report["environment"]
    lines = [f"# GPU check, {info['date']}", "",
             f"GPU: {info.get('gpu', 'none (dry run)')}; CuPy {info['cupy']}, PyTorch {info['torch']}, NumPy "
             f"{info['numpy']}; commit {info.get('commit', '?')}; total {report['seconds']:.0f} s"
             + (" (DRY RUN on the CPU: not a measurement)" if info["dry_run"] else ""), ""]
    tests = report.get("tests", {})
    if tests:
        lines += ["## (a) GPU tests", "", "| run | status | passed | failed | skipped | seconds |",
                  "|---|---|---|---|---|---|"]
        for key, label in (("tests_fused", "fused kernels on"), ("tests_plain", "TINYDL_FUSED_KERNELS=0")):
            run = tests.get(key, {})
            lines.append(f"| {label} | {run.get('status', 'not run')} | {run.get('passed', '')} | "
                         f"{run.get('failed', '')} | {run.get('skipped', '')} | {run.get('seconds', '')} |")
        for key in ("tests_fused", "tests_plain"):
            for failure in tests.get(key, {}).get("failures", []):
                lines.append(f"- failed ({key}): `{failure}`")
        lines.append("")
    models = report.get("models", {})
    if models:
        lines += ["## (b) training steps against PyTorch (medians, ms)", "",
                  "| model | tinydl fused | tinydl plain | PyTorch | ratio fused | ratio plain "
                  "| first loss tinydl / torch |",
                  "|---|---|---|---|---|---|---|"]
        for row in models.get("models", []):
            lines.append(f"| {row['model']} | {_ms(row['tinydl_fused_ms'])} | {_ms(row['tinydl_plain_ms'])} | "
                         f"{_ms(row['torch_ms'])} | {row['ratio_fused']:.2f} | {row['ratio_plain']:.2f} | "
                         f"{row['first_loss_tinydl']:.4f} / {row['first_loss_torch']:.4f} |")
        lines += ["", "### fused kernels against their plain paths (float32, medians, ms)", "",
                  "| kernel (workload) | fused | plain | speed-up |", "|---|---|---|---|"]
        for row in models.get("kernels", []):
            lines.append(f"| {row['kernel']} | {row['fused_ms']:.3f} | {row['plain_ms']:.3f} | "
                         f"{row['speedup']:.2f}x |")
        for key in ("models_error", "kernels_error"):
            if key in models:
                lines += ["", f"{key}:", "```", models[key].strip()[-2000:], "```"]
        lines.append(f"\nstatus: {models.get('status')}, {models.get('seconds')} s")
        lines.append("")
    cifar = report.get("cifar", {})
    if cifar:
        lines += ["## (c) one epoch of the article's CNN on CIFAR-10", ""]
        if cifar.get("status") == "skipped":
            lines.append(cifar["reason"])
        else:
            lines.append(f"test accuracy {cifar.get('test_accuracy_percent')}% after one epoch, "
                         f"{cifar.get('seconds')} s including start-up and evaluation ({cifar.get('status')}); "
                         f"`{cifar.get('command')}`")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    args.results_dir = args.results_dir.resolve()
    args.results_dir.mkdir(parents=True, exist_ok=True)
    if args.part == "models":
        models_child(args)
        return 0
    start = time.perf_counter()
    budget = DRY_RUN_SECONDS if args.dry_run else PART_SECONDS

    def limit(key: str) -> float:
        """The part's own limit, cut to what is left of the whole check's time."""
        return min(budget[key], TOTAL_SECONDS - (time.perf_counter() - start))

    report: dict[str, Any] = {"environment": environment(args.dry_run)}
    print(f"GPU check{' (dry run, CPU)' if args.dry_run else ''}: results in {args.results_dir}", flush=True)
    parts = {"tests": part_tests, "models": part_models, "cifar": part_cifar}
    for key in args.parts.split(","):
        try:
            report[key] = parts[key](args, limit)
        except Exception:                  # one part's failure must not lose the others
            report[key] = {"status": "error", "error": traceback.format_exc()}
            print(report[key]["error"], flush=True)
    report["seconds"] = time.perf_counter() - start
    (args.results_dir / "gpu_check.json").write_text(json.dumps(report, indent=2))
    table = markdown(report)
    (args.results_dir / "gpu_check.md").write_text(table)
    print("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
