"""The SLURM templates in jobs/ render to valid bash with threads pinned; the renderer
rejects missing and unknown placeholders with exit status 2."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
JOBS = REPO / "jobs"
RENDER = JOBS / "render.py"
TEMPLATES = sorted(JOBS.glob("*.sbatch"))

TEST_VALUES = {
    "JOB_NAME": "pqml-test",
    "PARTITION": "debug",
    "NODES": "2",
    "NTASKS_PER_NODE": "4",
    "TIME": "00:10:00",
    "CONFIG": "jobs/configs/demo.toml",
    "VENV": "/opt/venvs/pqml",
    "SIGNAL_SECONDS": "120",
}


def run_render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RENDER), *args], capture_output=True, text=True, timeout=60
    )


def template_placeholders(template: Path) -> list[str]:
    out = run_render(str(template), "--list")
    assert out.returncode == 0, out.stderr
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def render_ok(template: Path, values: dict[str, str]) -> str:
    sets = [f"--set={k}={v}" for k, v in values.items() if k in template_placeholders(template)]
    out = run_render(str(template), *sets)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_templates_exist() -> None:
    names = {t.name for t in TEMPLATES}
    assert {"sample_srun.sbatch", "sample_mpirun.sbatch"} <= names


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_template_renders_to_valid_bash(template: Path, tmp_path: Path) -> None:
    text = render_ok(template, TEST_VALUES)
    assert "{{" not in text and "}}" not in text
    assert text.startswith("#!/bin/bash\n")
    script = tmp_path / "job.sbatch"
    script.write_text(text)
    check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr

    lines = text.splitlines()
    # Slurm directives carry the values.
    assert "#SBATCH --nodes=2" in lines
    assert "#SBATCH --ntasks-per-node=4" in lines
    assert "#SBATCH --cpus-per-task=1" in lines
    assert "#SBATCH --partition=debug" in lines
    assert "#SBATCH --time=00:10:00" in lines
    assert 'source "/opt/venvs/pqml/bin/activate"' in lines
    # One thread per rank, per-node numba cache, warmed once per node.
    assert "export OMP_NUM_THREADS=1" in lines
    assert "export NUMBA_NUM_THREADS=1" in lines
    assert any(l.startswith("export NUMBA_CACHE_DIR=") and "SLURM_JOB_ID" in l for l in lines)
    assert "--ntasks-per-node=1" in text and 'python -m parallel_qftml.warmup' in text
    assert 'parallel_qftml sample "jobs/configs/demo.toml"' in text
    # The warm-up comes before the parallel run.
    assert text.index("-m parallel_qftml.warmup") < text.index("parallel_qftml sample")


def test_srun_template_pins_cores() -> None:
    text = render_ok(JOBS / "sample_srun.sbatch", TEST_VALUES)
    assert "srun --mpi=pmix --cpus-per-task=1 --cpu-bind=cores" in text
    assert "python -m mpi4py -m parallel_qftml sample" in text


def test_mpirun_template_pins_cores() -> None:
    text = render_ok(JOBS / "sample_mpirun.sbatch", TEST_VALUES)
    assert "--bind-to core" in text
    assert "mpirun " in text and "python -m mpi4py -m parallel_qftml sample" in text


def test_defaults_and_empty_partition_line_dropped() -> None:
    out = run_render(str(JOBS / "sample_srun.sbatch"), "--set", "CONFIG=x.toml")
    assert out.returncode == 0, out.stderr
    assert "#SBATCH --partition" not in out.stdout
    assert "#SBATCH --nodes=1" in out.stdout.splitlines()
    assert f'source "{REPO / ".venv"}/bin/activate"' in out.stdout


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_missing_placeholder_exits_2(template: Path) -> None:
    out = run_render(str(template))  # CONFIG has no default
    assert out.returncode == 2
    assert out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1
    assert "CONFIG" in out.stderr


def test_unknown_placeholder_exits_2() -> None:
    out = run_render(str(JOBS / "sample_srun.sbatch"), "--set", "CONFIG=x", "--set", "NO_SUCH=1")
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1
    assert "NO_SUCH" in out.stderr


@pytest.mark.parametrize(
    "bad", ["NODES=0", "NTASKS_PER_NODE=four", "TIME=soon", 'CONFIG=a"b', "CONFIG=$(rm -rf ~)", "JOB_NAME=a b"]
)
def test_bad_values_exit_2(bad: str) -> None:
    out = run_render(str(JOBS / "sample_srun.sbatch"), "--set", "CONFIG=x", "--set", bad)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1


def test_render_function_in_process() -> None:
    spec = importlib.util.spec_from_file_location("pqml_jobs_render", RENDER)
    assert spec is not None and spec.loader is not None
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    assert render.render("a={{X}} b={{X}}\n", {"X": "1"}) == "a=1 b=1\n"
    with pytest.raises(render.RenderError):
        render.render("{{X}}\n", {})


def test_ci_run_is_valid_bash() -> None:
    check = subprocess.run(["bash", "-n", str(REPO / ".ci" / "run")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
