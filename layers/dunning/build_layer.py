"""Build the DunningLayer: ``python/`` with the declared requirements, pruned, and the ``dunning`` package.

``sam build`` runs it through ``layers/dunning/Makefile`` (``BuildMethod: makefile``, target
``build-DunningLayer``, ``ARTIFACTS_DIR`` set by SAM); ``make layer`` runs the same target into ``out/``.

1. ``pip install --target`` of ``requirements.txt`` with wheels only, for Lambda's platform
   (``manylinux2014_aarch64``, CPython 3.13, as the template's ``CompatibleArchitectures`` and
   ``CompatibleRuntimes`` say), or for this interpreter with ``--platform host`` (the twin the tests
   import, since an aarch64/3.13 build cannot be imported on another machine).
2. Remove what the Lambda runtime already provides (boto3 and its dependencies): pip cannot know the
   runtime has them, and a copy in ``/opt/python`` would shadow the runtime's and drift from it.
3. Babel's locale data: only the languages that have templates (``dunning/data/templates/locales``) keep
   their data (every regional variant of the language, so a borrower's ``en-GB`` formats as en-GB, with
   its parents and ``root``). The renderer formats in no other language (``TemplateCatalog.resolve_locale``:
   a borrower's own locale only when it shares a template's language, else the template's locale). Every
   other locale stays as an empty file, so that Babel still recognises it (``Locale.parse``, the engine's
   "known locale" note, the renderer's language match) while formatting in it fails loudly.
4. phonenumbers: the geocoder's and the carrier mapper's data are dropped (19.5 MB and 1 MB). The layer
   parses, formats and maps numbers to time zones (``phonenumbers.timezone``); area code → state/province
   comes from ``dunning/data`` (generated offline from the geocoder data). Importing
   ``phonenumbers.geocoder`` or ``phonenumbers.carrier`` from the layer raises ImportError.
5. Console scripts (``bin/``) go: nothing runs them in a layer.
6. Bytecode: Lambda cannot write into ``/opt``, so a layer without ``__pycache__`` compiles every module
   it imports on every cold start (about twice the CPU of the rest of the sender's cold start). The
   layer is compiled with the target's own CPython (``python3.13``: the interpreter running this script
   under ``sam build --use-container``, ``$LAYER_PYTHON``, or one on the PATH), into unchecked-hash
   ``.pyc`` files (valid whatever the files' timestamps after unzipping). Without that interpreter the
   layer ships without bytecode, and the build says so.

``--cache DIR`` keeps the pip result in ``DIR/<platform>-<hash of the requirements>`` and hard-links it
into the artifacts, so a rebuild with unchanged requirements does not ask the package index. Pruning
only removes and creates files, never rewrites one, so the cache is never altered through a link.

Standard library only: SAM runs it with whatever ``python3`` is on the build machine's path.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
PACKAGE = HERE / "dunning"
TEMPLATES = PACKAGE / "data" / "templates" / "locales"

LAMBDA_PLATFORM = "manylinux2014_aarch64"
LAMBDA_PYTHON = "3.13"
# boto3 and its dependencies, on the Lambda Python runtime's path (/var/runtime). Names as pip
# normalises them (PEP 503).
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
)
PHONENUMBERS_DROPPED = ("geodata", "carrierdata")


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return "-".join(part for part in name.lower().replace("_", "-").replace(".", "-").split("-") if part)


def template_languages(templates: Path = TEMPLATES) -> frozenset[str]:
    """The languages the product has templates in (``en-US.yaml`` → ``en``)."""
    return frozenset(path.stem.split("-")[0].lower() for path in templates.glob("*.yaml"))


def pip_command(target: Path, platform: str) -> list[str]:
    """The pip command that installs the requirements into ``target`` for ``platform``."""
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
        "--only-binary=:all:", "--target", str(target), "-r", str(REQUIREMENTS),
    ]  # fmt: skip
    if platform != "host":
        command += ["--platform", platform, "--implementation", "cp", "--python-version", LAMBDA_PYTHON]
    return command


def cache_key(platform: str) -> str:
    """Which pip result a cache entry holds: the platform and the requirements' text."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    if platform == "host":
        platform = f"host-cp{sys.version_info.major}{sys.version_info.minor}"
    return f"{platform}-{digest}"


def install(target: Path, platform: str, cache: Path | None) -> None:
    """pip install the requirements into ``target`` (through the cache when one is given)."""
    if cache is None:
        subprocess.run(pip_command(target, platform), check=True)
        return
    entry = cache / cache_key(platform)
    if not (entry / ".complete").exists():
        if entry.exists():
            shutil.rmtree(entry)
        entry.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(pip_command(entry, platform), check=True)
        (entry / ".complete").touch()
    shutil.copytree(entry, target, copy_function=os.link, dirs_exist_ok=True)
    (target / ".complete").unlink()


def _installed_files(target: Path, dist_info: Path) -> list[Path]:
    files = []
    for line in (dist_info / "RECORD").read_text(encoding="utf-8").splitlines():
        path = line.rsplit(",", 2)[0]
        if path and not path.startswith(".."):
            files.append(target / path)
    return files


def remove_runtime_provided(target: Path) -> list[str]:
    """Delete the distributions the Lambda runtime provides; return their names."""
    removed = []
    for dist_info in sorted(target.glob("*.dist-info")):
        name = canonical(dist_info.name.removesuffix(".dist-info").rsplit("-", 1)[0])
        if name not in RUNTIME_PROVIDED:
            continue
        for path in _installed_files(target, dist_info):
            if path.is_file() or path.is_symlink():
                path.unlink()
        shutil.rmtree(dist_info, ignore_errors=True)
        removed.append(name)
    _remove_empty_dirs(target)
    return removed


def _remove_empty_dirs(root: Path) -> None:
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(folder.iterdir()):
            folder.rmdir()


def prune_babel(target: Path, languages: frozenset[str]) -> tuple[int, int]:
    """Empty every Babel locale file outside ``languages`` (root kept); return (kept, emptied)."""
    kept = emptied = 0
    for path in sorted((target / "babel" / "locale-data").glob("*.dat")):
        if path.stem == "root" or path.stem.split("_")[0].lower() in languages:
            kept += 1
            continue
        path.unlink()  # unlink, not truncate: the file may be a hard link into the cache
        path.touch()
        emptied += 1
    return kept, emptied


def prune_phonenumbers(target: Path) -> None:
    """Drop the geocoder's and the carrier mapper's data (see the module docstring)."""
    for name in PHONENUMBERS_DROPPED:
        shutil.rmtree(target / "phonenumbers" / name, ignore_errors=True)


def find_interpreter(version: str) -> str | None:
    """A working CPython ``version`` (``3.13``): this one, ``$LAYER_PYTHON`` or ``python3.13`` on the PATH."""
    candidates = [sys.executable, os.environ.get("LAYER_PYTHON"), shutil.which(f"python{version}")]
    for candidate in filter(None, candidates):
        try:
            found = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=60,
            )
        except OSError:
            continue
        if found.returncode == 0 and found.stdout.strip() == version:
            return candidate
    return None


def compile_bytecode(target: Path, platform: str) -> str | None:
    """Compile every module with the target's CPython; return that interpreter, or None if there is none."""
    wanted = f"{sys.version_info.major}.{sys.version_info.minor}" if platform == "host" else LAMBDA_PYTHON
    interpreter = find_interpreter(wanted)
    if interpreter is None:
        print(
            f"build_layer.py: no python{wanted} here: the layer has no bytecode, so each cold start compiles "
            "what it imports (build with `sam build --use-container` to include it)",
            file=sys.stderr,
        )
        return None
    subprocess.run(
        [
            interpreter,
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            str(target),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return interpreter


def copy_package(target: Path) -> None:
    """The ``dunning`` package itself, without bytecode caches."""
    destination = target / "dunning"
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(PACKAGE, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def build(
    artifacts: Path, *, platform: str = LAMBDA_PLATFORM, cache: Path | None = None, bytecode: bool = True
) -> Path:
    """Build the layer into ``artifacts/python``; return that folder."""
    target = artifacts / "python"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    install(target, platform, cache)
    remove_runtime_provided(target)
    shutil.rmtree(target / "bin", ignore_errors=True)
    prune_babel(target, template_languages())
    prune_phonenumbers(target)
    copy_package(target)
    if bytecode:
        compile_bytecode(target, platform)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", type=Path, help="the layer's root (SAM's ARTIFACTS_DIR)")
    parser.add_argument("--platform", default=LAMBDA_PLATFORM, help="pip platform tag, or 'host'")
    parser.add_argument("--cache", type=Path, default=None, help="keep pip results here between builds")
    parser.add_argument("--no-bytecode", action="store_true", help="do not precompile the modules")
    args = parser.parse_args(argv)
    build(args.artifacts.resolve(), platform=args.platform, cache=args.cache, bytecode=not args.no_bytecode)


if __name__ == "__main__":
    main()
