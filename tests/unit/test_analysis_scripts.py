"""The serial analysis scripts (analysis/plot.py, report.py, plot_overlap.py, bench_analysis.py) on a small
run made here with `python -m parallel_qftml sample` (1 process), and their handling of bad input files
(pqml_analysis.files): one line `<script>: error: <file>: ...` and exit code 2; outputs kept without --force."""
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from launch import REPO, env  # noqa: E402

ANALYSIS = REPO / "analysis"
SCRIPTS = ("plot.py", "report.py", "plot_overlap.py", "bench_analysis.py")
TARGET = "nn=-1,phi2=1.52425,phi4=0.175,nnn=-1,i_phi2=0.15"
CONFIG = """
[lattice]
shape = [4, 4]
[action]
kind = "target"
g = { nn = -1.0, phi2 = 1.52425, phi4 = 0.175, nnn = -1.0 }
[sampler]
seed = 5
n_therm = 200
n_sweeps = 1200
measure_every = 1
[output]
path = "run.h5"
overwrite = true
"""


def run(cwd, *args, timeout=120):
    e = env(MPLBACKEND="Agg")
    e.pop("PQML_TEST_RAISE_ON_RANK", None)
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=e, capture_output=True, text=True,
                          timeout=timeout)


def script(name):
    """analysis/<name> as a module; its main(argv) is called in-process (fast: no interpreter start-up)."""
    spec = importlib.util.spec_from_file_location(f"analysis_{name[:-3]}", ANALYSIS / name)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def assert_png(path):
    assert path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def one_error_line(err: str, prog: str, name: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: ") and name in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    (d / "run.toml").write_text(CONFIG)
    r = run(d, "-m", "parallel_qftml", "sample", "run.toml", "--set", "output.progress=false")
    assert r.returncode == 0, r.stdout + r.stderr
    return d / "run.h5"


@pytest.fixture(scope="module")
def bad_files(small_run, tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.h5").write_bytes(b"")
    data = small_run.read_bytes()
    (d / "truncated.h5").write_bytes(data[: len(data) // 2])
    shutil.copy(small_run, d / "schema1.h5")
    with h5py.File(d / "schema1.h5", "r+") as f:
        f.attrs["schema_version"] = 1
    with h5py.File(d / "learn.h5", "w") as f:                      # the shape of a pqml learn file
        f.attrs["schema_version"] = 2
        f.attrs["learn_mode"] = "target"
        f.create_dataset("learning/epoch", data=[1, 2])
    return {"missing": d / "missing.h5", "empty": d / "empty.h5", "truncated": d / "truncated.h5",
            "schema": d / "schema1.h5", "learn": d / "learn.h5"}


@pytest.mark.parametrize("name", SCRIPTS)
def test_help(name):
    r = run(REPO, ANALYSIS / name, "--help")
    assert r.returncode == 0 and "usage:" in r.stdout and r.stderr == ""


def test_plot_writes_png_and_keeps_outputs(small_run, tmp_path):
    out = tmp_path / "m.png"
    r = run(REPO, ANALYSIS / "plot.py", small_run, "m", "--out", out)
    assert r.returncode == 0, r.stderr
    assert_png(out)
    assert "tau_int" in r.stdout and "run|0" in r.stdout
    before = out.read_bytes()
    r = run(REPO, ANALYSIS / "plot.py", small_run, "m", "--out", out)             # no --force: exit 2
    assert r.returncode == 2 and out.read_bytes() == before
    one_error_line(r.stderr, "plot.py", str(out))
    plot = script("plot.py")
    for what in ("history", "histogram", "autocorr", "tauint"):
        assert plot.main([str(small_run), "action", "--what", what, "--out", str(tmp_path / f"{what}.png")]) == 0
        assert_png(tmp_path / f"{what}.png")
    assert plot.main([str(small_run), "m", "--out", str(out), "--force"]) == 0


def test_plot_unknown_observable(small_run, tmp_path, capsys):
    assert script("plot.py").main([str(small_run), "nope", "--out", str(tmp_path / "x.png")]) == 2
    line = one_error_line(capsys.readouterr().err, "plot.py", str(small_run))
    assert "'nope'" in line and "abs_m" in line
    assert not (tmp_path / "x.png").exists()


def test_report_writes_markdown_and_pngs(small_run, tmp_path):
    out = tmp_path / "rep"
    report = script("report.py")
    args = [str(small_run), "--out", str(out), "--obs", "m,abs_m,action,acceptance", "--bins", "10",
            "--target", TARGET, "--scan", "nnn=-1.05:-0.95:3"]
    assert report.main(args) == 0
    md = (out / "report.md").read_text()
    for text in ("binning", "Γ-method", "τ_int", "Binder", "χ", "## Reweighting", "reliable", "nnn′", "-1.0500"):
        assert text in md, text
    for n in ("m", "abs_m", "action", "acceptance", "overlap"):
        assert_png(out / f"{n}.png")
    before = (out / "report.md").read_bytes()
    assert report.main(args) == 2                                               # no --force
    assert (out / "report.md").read_bytes() == before
    assert report.main(args + ["--force"]) == 0


def test_report_warns_about_short_series(small_run, tmp_path):
    """1200 measurements in 100 bins of 12: bins shorter than 10 tau_int for the slow observables."""
    assert script("report.py").main([str(small_run), "--out", str(tmp_path / "r"), "--obs", "m,phi2",
                                      "--bins", "100"]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "**Warnings**" in md and "τ_int long" in md


def test_plot_overlap_writes_png_and_table(small_run, tmp_path):
    out = tmp_path / "w.png"
    po = script("plot_overlap.py")
    assert po.main([str(small_run), "--target", TARGET, "--scan", "nnn=-1.05:-0.8:3", "--scan", "nnn=-0.2:0:2",
                    "--out", str(out)]) == 0
    assert_png(out)
    table = out.with_suffix(".txt").read_text()
    assert "verdict" in table and table.count("\n") >= 7 and "FAILED" not in table
    assert po.main([str(small_run), "--target", TARGET, "--scan", "nnn=-1.05:-0.8:3", "--out", str(out)]) == 2
    assert po.main([str(small_run), "--target", "bogus=1", "--scan", "nnn=-1:0:2", "--out",
                    str(tmp_path / "b.png")]) == 2


@pytest.mark.parametrize("kind", ["missing", "empty", "truncated", "schema", "learn"])
def test_bad_files_exit_2_naming_the_file(bad_files, tmp_path, kind, capsys):
    path = bad_files[kind]
    expect = {"missing": "no such file", "empty": "empty file", "truncated": "truncated or corrupt",
              "schema": "schema_version 1", "learn": "learning file"}[kind]
    for name, argv in (("plot.py", [str(path), "m", "--out", str(tmp_path / "p.png")]),
                       ("report.py", [str(path), "--out", str(tmp_path / "rep")]),
                       ("plot_overlap.py", [str(path), "--target", TARGET, "--scan", "nnn=-1:-0.9:2", "--out",
                                            str(tmp_path / "o.png")])):
        assert script(name).main(argv) == 2
        line = one_error_line(capsys.readouterr().err, name, str(path))
        assert expect in line, line
    assert not any(tmp_path.iterdir())                                          # nothing written


def test_bad_file_exit_code_of_the_process(bad_files, tmp_path):
    r = run(REPO, ANALYSIS / "report.py", bad_files["truncated"], "--out", tmp_path / "rep")
    assert r.returncode == 2
    one_error_line(r.stderr, "report.py", str(bad_files["truncated"]))


def test_incomplete_run_warns_but_works(small_run, tmp_path, capsys):
    p = tmp_path / "incomplete.h5"
    shutil.copy(small_run, p)
    with h5py.File(p, "r+") as f:
        f.attrs["complete"] = False
    assert script("plot.py").main([str(p), "m", "--what", "history", "--out", str(tmp_path / "h.png")]) == 0
    err = capsys.readouterr().err
    assert f"plot.py: warning: {p}: run not complete" in err
    assert_png(tmp_path / "h.png")


def test_scripts_never_import_mpi4py_or_the_package(small_run, tmp_path):
    code = ("import sys, importlib.util\n"
            f"sys.path.insert(0, {str(ANALYSIS)!r})\n"
            "for name, argv in [('report', [sys.argv[1], '--out', sys.argv[2] + '/r', '--obs', 'm', '--target', "
            f"{TARGET!r}, '--scan', 'nnn=-1:-0.9:2']), ('bench_analysis', ['--n', '4000', '--n-gprime', '2', "
            "'--repeat', '1'])]:\n"
            "    spec = importlib.util.spec_from_file_location(name, sys.path[0] + '/' + name + '.py')\n"
            "    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
            "    assert mod.main(argv) == 0\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('mpi4py', 'parallel_qftml')]\n"
            "assert not bad, bad\n")
    r = run(tmp_path, "-c", code, small_run, tmp_path)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name", ["nnn", "action", "m"])
def test_non_finite_observables_are_refused(small_run, tmp_path, capsys, name):
    """A NaN in an observable that the reweighting uses: reweight_scan.py and report.py refuse the file
    with the same one-line error (files.finite_series), exit 2, nothing written (before: reweight_scan
    printed nan in every row with the verdict 'reliable')."""
    p = tmp_path / "nan.h5"
    shutil.copy(small_run, p)
    with h5py.File(p, "r+") as f:
        f["observables"][name][7, 0] = float("nan")
    out = tmp_path / "out"
    for prog, argv in (("reweight_scan.py", [str(p), "--target", TARGET, "--scan", "nnn=-1.05:-0.95:3",
                                             "--out", str(out / "rw")]),
                       ("report.py", [str(p), "--out", str(out), "--obs", "abs_m", "--target", TARGET,
                                      "--scan", "nnn=-1.05:-0.95:3"])):
        assert script(prog).main(argv) == 2, prog
        line = one_error_line(capsys.readouterr().err, prog, str(p))
        assert f"{name!r} has 1 non-finite" in line, line
    assert not out.exists()


def test_report_labels_lattice_sums_and_susceptibilities(small_run, tmp_path):
    """Each observable row names its formula; the lattice sums are also given per site (÷ V = 16), m and
    |m| are per site already; χ₂ = V(⟨m²⟩ − ⟨m⟩²) is named as the papers' χ₂, apart from the
    |m|-susceptibility (before: `phi2 22.3` with no hint that it is a lattice sum, χ_m unnamed)."""
    sys.path.insert(0, str(ANALYSIS))
    from pqml_analysis import binned_error, load_run, susceptibility
    out = tmp_path / "rep"
    assert script("report.py").main([str(small_run), "--out", str(out), "--obs", "phi2,m,acceptance",
                                     "--bins", "10"]) == 0
    md = (out / "report.md").read_text()
    cells = lambda r: [c.strip() for c in re.split(r"(?<!\\)\|", r)[1:-1]]     # split at unescaped |
    rows = {cells(r)[0]: cells(r) for r in md.splitlines() if r.startswith("| ")}
    run = load_run(small_run)
    phi2 = run["observables"]["phi2"][:, 0]
    mean, err = binned_error(phi2, 10)
    rep = script("report.py")
    assert rows["phi2"][1] == "Σ_x φ_x²" and rows["phi2"][2] == rep.fmt(mean, err)
    assert rows["phi2"][3] == rep.fmt(mean / 16, err / 16) and 0.1 < mean / 16 < 10     # per site
    assert rows["m"][1] == "m = Σ_x φ_x / V" and rows["m"][3] == "—"                    # per site already
    assert rows["acceptance"][3] == "—"
    m = run["observables"]["m"][:, 0]
    chi2 = [v for k, v in rows.items() if k.startswith("χ₂ = V(⟨m²⟩ − ⟨m⟩²)")]
    assert len(chi2) == 1 and "papers' χ₂" in md
    assert chi2[0][1] == rep.fmt(*susceptibility(m, 16, 10, absolute=False))
    chi_abs = [v for k, v in rows.items() if k.startswith("χ_\\|m\\| = V(⟨m²⟩ − ⟨\\|m\\|⟩²)")]
    assert len(chi_abs) == 1 and chi_abs[0][1] == rep.fmt(*susceptibility(m, 16, 10))
