"""nox sessions for the snetx monorepo.

Every session gets a small venv (no pip of its own) that sees one shared install of the
heavy dependencies (torch, torchvision, CuPy, ...) through a .pth file, so torch is
installed once per machine, not once per session. Set SNETX_DEPS_VENV to reuse an
existing deps venv.

    nox                    lint, tests, packaging, docs (what CI runs)
    nox -s tests           every distribution, CPU tests and doctests
    nox -s tests-core      core alone (likewise tests-core-vision, tests-core-cuda)
    nox -s tests-gpu       pytest -m gpu for each combination (needs a CUDA device)
    nox -s tests-slow      pytest -m slow: the long CPU tests (ImageNet-sized models, ...)
    nox -s build           wheels and sdists of all four distributions into dist/
    nox -s packaging       install built wheels in fresh venvs, per combination
    nox -s docs            the documentation site (warnings are errors), checked in Chromium
    nox -s bench           side-by-side benchmarks (see benchmarks/)
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent.resolve()
DEPS_FILE = ROOT / "requirements" / "deps.txt"
DEPS_VENV = Path(os.environ.get("SNETX_DEPS_VENV", ROOT / ".nox" / "_deps"))
PACKAGES = {
    "core": ROOT / "packages" / "snetx-core",
    "cuda": ROOT / "packages" / "snetx-cuda",
    "vision": ROOT / "packages" / "snetx-vision",
}
COMBOS = {
    "core": ["core"],
    "core-vision": ["core", "vision"],
    "core-cuda": ["core", "cuda"],
    "all": ["core", "vision", "cuda"],
}

nox.options.sessions = ["lint", "tests", "packaging", "docs"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"
VENV_PARAMS = ["--without-pip"]


def _site_packages(python: Path) -> str:
    return subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
    ).strip()


def deps_site() -> str:
    """Create (once) the shared deps venv and return its site-packages."""
    python = DEPS_VENV / "bin" / "python"
    stamp = DEPS_VENV / ".deps-sha256"
    want = hashlib.sha256(DEPS_FILE.read_bytes()).hexdigest()
    if not (python.exists() and stamp.exists() and stamp.read_text() == want):
        subprocess.check_call([sys.executable, "-m", "venv", str(DEPS_VENV)])
        subprocess.check_call([str(python), "-m", "pip", "install", "-q", "-U", "pip"])
        subprocess.check_call([str(python), "-m", "pip", "install", "-q", "-r", str(DEPS_FILE)])
        stamp.write_text(want)
    return _site_packages(python)


def link_deps(session: nox.Session) -> None:
    site = session.run(
        "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", silent=True
    ).strip()
    Path(site, "_snetx_deps.pth").write_text(deps_site() + "\n")
    session.env["SNETX_DEPS_SITE"] = deps_site()


def pip(session: nox.Session, *args: str) -> None:
    session.run("python", "-m", "pip", "install", "-q", "--no-build-isolation", *args)


def install_editable(session: nox.Session, parts) -> None:
    link_deps(session)
    # a reused venv may hold other distributions from an earlier combination
    session.run(
        "python",
        "-m",
        "pip",
        "uninstall",
        "-q",
        "-y",
        *[f"snetx-{p}" for p in PACKAGES if p not in parts],
        "snetx",
        silent=True,
    )
    for part in parts:
        pip(session, "-e", str(PACKAGES[part]))


REF_WHEELS = ROOT / ".nox" / "_ref"


def reference_wheels(session: nox.Session) -> None:
    """The original snetx 0.1.3 wheel (compatibility tests compare with it), fetched once
    from the registry; the tests skip with a reason when it cannot be had."""
    if not list(REF_WHEELS.glob("snetx-0.1.3-*.whl")):
        subprocess.call(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(REF_WHEELS),
             "snetx==0.1.3"]
        )  # fmt: skip
    session.env["SNETX_REF_WHEELS"] = str(REF_WHEELS)


def run_pytest(session: nox.Session, parts, *extra: str) -> None:
    reference_wheels(session)
    paths = [str(PACKAGES[p] / "tests") for p in parts]
    srcs = [str(PACKAGES[p] / "src" / "snetx") for p in parts]
    session.run("python", "-m", "pytest", "--durations=25", *paths, *extra, *session.posargs)
    if "-m" not in extra:
        # docstring examples, so documentation and code cannot drift
        session.run(
            "python", "-m", "pytest", "-q", "--doctest-modules", *srcs, "--ignore-glob=*__main__.py"
        )


@nox.session(venv_params=VENV_PARAMS)
def tests(session: nox.Session) -> None:
    """All distributions, CPU tests (gpu-marked tests skip with a reason)."""
    install_editable(session, COMBOS["all"])
    run_pytest(session, COMBOS["all"])
    # repository-level checks that need every distribution (the benchmark charts' data)
    session.run("python", "-m", "pytest", "-q", str(ROOT / "tests" / "test_benchmark_results.py"))
    with session.chdir(ROOT / "test"):  # the original documented smoke test: README examples
        session.run("python", "main.py")


def _combo_session(combo: str):
    def session_fn(session: nox.Session) -> None:
        install_editable(session, COMBOS[combo])
        run_pytest(session, COMBOS[combo])

    session_fn.__doc__ = (
        f"CPU tests with only {', '.join('snetx-' + p for p in COMBOS[combo])} installed."
    )
    return session_fn


for _combo in ("core", "core-vision", "core-cuda"):
    nox.session(name=f"tests-{_combo}", venv_params=VENV_PARAMS)(_combo_session(_combo))


@nox.session(name="tests-slow", venv_params=VENV_PARAMS)
def tests_slow(session: nox.Session) -> None:
    """The long CPU tests (marked slow), every distribution."""
    install_editable(session, COMBOS["all"])
    run_pytest(session, COMBOS["all"], "-m", "slow")


@nox.session(name="tests-gpu", venv_params=VENV_PARAMS)
@nox.parametrize("combo", ["core", "core-vision", "core-cuda", "all"])
def tests_gpu(session: nox.Session, combo: str) -> None:
    """pytest -m gpu for each combination; fails (never passes vacuously) without CUDA."""
    install_editable(session, COMBOS[combo])
    visible = (
        session.run("python", "-c", "import torch; print(torch.cuda.device_count())", silent=True)
        .strip()
        .splitlines()[-1]
    )
    if visible == "0":
        session.error(
            "tests-gpu needs a visible CUDA device (torch.cuda.device_count() == 0); "
            "run it on a GPU machine or run 'nox -s tests' for the CPU suite"
        )
    run_pytest(session, COMBOS[combo], "-m", "gpu", "-p", "no:cacheprovider")


@nox.session(venv_params=VENV_PARAMS)
def lint(session: nox.Session) -> None:
    link_deps(session)
    session.run(
        "python",
        "-m",
        "ruff",
        "check",
        "packages",
        "benchmarks",
        "tools",
        "test",
        "noxfile.py",
        "tests",
        "docs",
    )


@nox.session(venv_params=VENV_PARAMS)
def build(session: nox.Session) -> None:
    """sdist, then a wheel built from that sdist, for each of the four distributions."""
    link_deps(session)
    out = ROOT / "dist"
    for name in ("snetx-core", "snetx-cuda", "snetx-vision", "snetx"):
        session.run(
            "python",
            "-m",
            "build",
            "--no-isolation",
            "-o",
            str(out),
            str(ROOT / "packages" / name),
            silent=True,
        )
    session.log(f"built: {sorted(p.name for p in out.iterdir())}")


@nox.session(venv_params=VENV_PARAMS)
def packaging(session: nox.Session) -> None:
    """Build every distribution, install combinations into fresh venvs, check imports."""
    build(session)
    session.run(
        "python",
        "-m",
        "pytest",
        "-q",
        str(ROOT / "tests" / "test_packaging.py"),
        env={"SNETX_DIST": str(ROOT / "dist")},
    )


@nox.session(venv_params=VENV_PARAMS)
def docs(session: nox.Session) -> None:
    """The documentation site: Sphinx with warnings as errors, tutorials executed, then
    links and rendering checked (headless Chromium) by docs/check_site.py."""
    install_editable(session, COMBOS["all"])
    session.run(
        "python", "-m", "pip", "install", "-q", "-r", str(ROOT / "requirements" / "docs.txt")
    )
    out = ROOT / "docs" / "_build" / "html"
    session.run(
        "python",
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-q",
        "-b",
        "html",
        str(ROOT / "docs"),
        str(out),
    )
    session.run("python", str(ROOT / "docs" / "check_site.py"), str(out))
    session.log(f"site: {out / 'index.html'}")


@nox.session(venv_params=VENV_PARAMS)
def bench(session: nox.Session) -> None:
    """Side-by-side benchmarks against SpikingJelly, snnTorch and Norse."""
    install_editable(session, COMBOS["all"])
    session.run("python", "-m", "pip", "install", "-q", "spikingjelly==2.0.0", "snntorch", "norse")
    session.run("python", str(ROOT / "benchmarks" / "run_all.py"), *session.posargs)
