"""Install the built wheels into fresh venvs, per combination, and check what imports.

Run by ``nox -s packaging`` (after ``nox -s build``): SNETX_DIST names the wheel folder
and SNETX_DEPS_SITE the shared site-packages holding torch & co., which each fresh venv
sees through a .pth file (pip then treats them as installed; --no-index keeps it offline).
"""

import json
import os
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DIST = Path(os.environ.get("SNETX_DIST", ROOT / "dist"))
DEPS_SITE = os.environ.get("SNETX_DEPS_SITE")
VERSION = (ROOT / "VERSION").read_text().strip()

pytestmark = pytest.mark.skipif(
    not DEPS_SITE or not DIST.is_dir(), reason="run through 'nox -s packaging' (needs built wheels)"
)

PROBE = r"""
import importlib, json, sys
import snetx
result = {"torch_after_import_snetx": "torch" in sys.modules, "version": snetx.__version__}
for name in ("snn", "cuend", "dataset", "models"):
    try:
        getattr(snetx, name)
        result[name] = "ok"
    except ModuleNotFoundError as e:
        result[name] = "missing: " + str(e)
try:
    importlib.import_module("snetx.dataset.vision")
    result["import snetx.dataset.vision"] = "ok"
except ModuleNotFoundError as e:
    result["import snetx.dataset.vision"] = "missing: " + str(e)
print(json.dumps(result))
"""

CASES = {
    "core": (["snetx-core"], {"snn"}),
    "core+vision": (["snetx-vision"], {"snn", "dataset", "models"}),
    "core+cuda": (["snetx-cuda"], {"snn", "cuend"}),
    "meta[all]": (["snetx[all]"], {"snn", "cuend", "dataset", "models"}),
}
PROVIDER = {"cuend": "snetx-cuda", "dataset": "snetx-vision", "models": "snetx-vision"}


def _fresh_venv(path: Path) -> Path:
    subprocess.check_call([sys.executable, "-m", "venv", "--without-pip", str(path)])
    python = path / "bin" / "python"
    site = subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
    ).strip()
    Path(site, "_deps.pth").write_text(DEPS_SITE + "\n")
    return python


@pytest.mark.parametrize("case", list(CASES))
def test_install_combination(case, tmp_path):
    requirements, present = CASES[case]
    python = _fresh_venv(tmp_path / "venv")
    subprocess.check_call(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--find-links",
            str(DIST),
            *requirements,
        ]
    )
    out = subprocess.check_output([str(python), "-c", PROBE], text=True, cwd=tmp_path)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["torch_after_import_snetx"] is False
    assert result["version"] == VERSION
    for name in ("snn", "cuend", "dataset", "models"):
        if name in present:
            assert result[name] == "ok", (name, result[name])
        else:
            assert result[name].startswith("missing"), (name, result[name])
            assert f"pip install ./packages/{PROVIDER[name]}" in result[name]
    if "dataset" not in present:
        assert "snetx-vision" in result["import snetx.dataset.vision"]
    listed = subprocess.check_output([str(python), "-m", "pip", "list", "--format=json"], text=True)
    versions = {
        d["name"]: d["version"] for d in json.loads(listed) if d["name"].startswith("snetx")
    }
    assert set(versions.values()) == {VERSION}


def _metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(z.read(name).decode()), z.namelist()


def test_wheels_share_one_version_with_exact_pins():
    wheels = sorted(DIST.glob(f"snetx*-{VERSION}-py3-none-any.whl"))
    assert len(wheels) == 4, [w.name for w in wheels]
    for wheel in wheels:
        meta, names = _metadata(wheel)
        assert meta["Version"] == VERSION
        for req in meta.get_all("Requires-Dist") or []:
            if req.startswith("snetx"):
                assert f"=={VERSION}" in req, req
        # only snetx-core ships the namespace's __init__
        owns_init = "snetx/__init__.py" in names
        assert owns_init == (meta["Name"] == "snetx-core"), meta["Name"]
    sdists = sorted(DIST.glob(f"snetx*-{VERSION}.tar.gz"))
    assert len(sdists) == 4, [s.name for s in sdists]


def _wheel_meta(name):
    (wheel,) = DIST.glob(f"{name.replace('-', '_')}-{VERSION}-py3-none-any.whl")
    return _metadata(wheel)[0]


def test_dependency_floors_and_cupy_extras():
    core = _wheel_meta("snetx-core").get_all("Requires-Dist")
    assert "torch>=2.3" in core  # torch.compiler.is_compiling
    cuda = _wheel_meta("snetx-cuda").get_all("Requires-Dist")
    assert "torch>=2.4" in cuda  # torch.library.custom_op
    assert not [r for r in cuda if r.startswith("cupy") and "extra ==" not in r]  # no forced build
    assert any(r.startswith("cupy-cuda12x") and "extra == 'cuda12'" in r for r in cuda), cuda
    assert any(r.startswith("cupy-cuda13x") and "extra == 'cuda13'" in r for r in cuda), cuda
    meta = _wheel_meta("snetx").get_all("Requires-Dist")
    assert any(r.startswith("snetx-cuda[cuda12]") and "extra == 'cuda'" in r for r in meta), meta


# torch APIs the code calls (as the source spells them) and the release that added each
TORCH_API_SINCE = {
    "torch.library.custom_op": (2, 4),
    ".register_fake": (2, 4),
    "torch.compiler.is_compiling": (2, 3),
    "torch.amp.GradScaler": (2, 3),
}


def _torch_floor(requires):
    floors = [r.split(">=")[1].split(",")[0] for r in requires or [] if r.startswith("torch>=")]
    return tuple(int(x) for x in floors[0].split(".")[:2]) if floors else None


def test_torch_floor_covers_the_apis_used():
    """Each distribution's torch floor (its own, or snetx-core's) is at least the release
    that added every torch API its source calls."""
    core_floor = _torch_floor(_wheel_meta("snetx-core").get_all("Requires-Dist"))
    for dist in ("snetx-core", "snetx-cuda", "snetx-vision"):
        floor = _torch_floor(_wheel_meta(dist).get_all("Requires-Dist")) or core_floor
        text = "".join(p.read_text() for p in (ROOT / "packages" / dist / "src").rglob("*.py"))
        for api, since in TORCH_API_SINCE.items():
            if api in text:
                assert floor >= since, (dist, api, floor)


def test_long_descriptions_have_no_links_that_break_on_the_index():
    for name in ("snetx-core", "snetx-cuda", "snetx-vision", "snetx"):
        text = _wheel_meta(name).get_payload()
        assert "](../" not in text and "shared/SPEC" not in text, name
        assert len(text) > 200, name  # a real description, not a pointer


def _stand_in_013(folder: Path) -> Path:
    """A wheel shaped like the old single-package snetx 0.1.3: its own snetx/__init__.py
    and snetx/snn/__init__.py, importing a module that is not installed (0.1.3 needs
    torchvision and termcolor at import)."""
    wheel = folder / "snetx-0.1.3-py3-none-any.whl"
    info = "snetx-0.1.3.dist-info"
    files = {
        "snetx/__init__.py": "from . import dataset\n",
        "snetx/dataset/__init__.py": "import torchvision_that_is_not_installed\n",
        "snetx/snn/__init__.py": "from . import neuron\n",
        "snetx/snn/neuron.py": "LIF = None\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: snetx\nVersion: 0.1.3\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    with zipfile.ZipFile(wheel, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
        z.writestr(f"{info}/RECORD", "".join(f"{n},,\n" for n in [*files, f"{info}/RECORD"]))
    return wheel


def test_the_old_single_package_over_the_namespace_is_named_with_the_fix(tmp_path):
    python = _fresh_venv(tmp_path / "venv")
    pip = [str(python), "-m", "pip", "install", "-q", "--no-index", "--find-links", str(DIST)]
    subprocess.check_call([*pip, "snetx-vision"])
    # what 'pip install "snetx[all]"' did before 0.2 was published: 0.1.3 over our files
    subprocess.check_call([*pip, str(_stand_in_013(tmp_path))])
    proc = subprocess.run(
        [str(python), "-c", "from snetx.snn import neuron"], capture_output=True, text=True
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "old single-package snetx 0.1.3" in last and "pip uninstall -y snetx" in last, last
    assert "torchvision_that_is_not_installed" not in proc.stderr  # the cause, not the symptom
    bindir = python.parent
    cmd = subprocess.run([str(bindir / "snetx-train"), "--help"], capture_output=True, text=True)
    assert cmd.returncode == 2, cmd.stderr
    assert cmd.stderr.strip().count("\n") == 0 and "pip uninstall -y snetx" in cmd.stderr
    # the fix, as the message says, works
    subprocess.check_call(
        [str(python), "-m", "pip", "uninstall", "-q", "-y", "snetx", "snetx-core", "snetx-vision"]
    )
    subprocess.check_call([*pip, "snetx-vision"])
    subprocess.check_call([str(python), "-c", "from snetx.snn import neuron; neuron.LIF()"])


def test_the_guard_is_quiet_with_the_02_meta_distribution(tmp_path):
    python = _fresh_venv(tmp_path / "venv")
    subprocess.check_call(
        [str(python), "-m", "pip", "install", "-q", "--no-index", "--find-links", str(DIST),
         "snetx[nir]"]
    )  # fmt: skip
    out = subprocess.check_output(
        [str(python), "-c", "import sys, snetx.snn; print(type(sys.meta_path[0]).__name__)"],
        text=True,
    )
    assert out.strip() == "Guard"  # installed by the .pth, and it let snetx import


def _install_commands():
    """Every 'pip install ./packages...' or git-URL command of the README and the docs'
    install page, continuation lines joined, comments dropped, each once."""
    commands = []
    for doc in (ROOT / "README.md", ROOT / "docs" / "install.md"):
        text = doc.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("pip install") and ("./packages" in line or "git+" in line):
                line = " ".join(line.split())
                if line not in commands:
                    commands.append(line)
    return commands


def test_the_documented_install_commands_are_found():
    commands = _install_commands()
    assert any("git+file://$PWD#subdirectory=packages/snetx-core" in c for c in commands)
    assert any('"./packages/snetx[all]"' in c for c in commands)
    assert len(commands) >= 7, commands


@pytest.mark.parametrize("command", _install_commands())
def test_the_documented_install_commands_run_as_written(command, tmp_path):
    """Run in the repository's root, as the docs say, in a fresh venv (torch & co. from
    the shared install; pip fetches the build backend from the registry as it would)."""
    python = _fresh_venv(tmp_path / "venv")
    run = subprocess.run(
        ["bash", "-c", command.replace("pip install", f"'{python}' -m pip install -q", 1)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    subprocess.check_call([str(python), "-c", "import snetx.snn; snetx.snn.neuron.LIF()"])
