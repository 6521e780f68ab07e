"""Config schemas are derived from constructors once and then read from the on-disk cache (robolearn.utils.schema)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.config_store import ConfigStore

from robolearn.utils import schema

REPO = Path(__file__).resolve().parent.parent


def _conf(tmp_path: Path, default: int = 3) -> Path:
    """A conf tree with one policy yaml whose target is a class of this test module."""
    conf = tmp_path / "conf"
    (conf / "policy").mkdir(parents=True, exist_ok=True)
    (conf / "policy" / "toy.yaml").write_text(f"_target_: {__name__}.Toy\n# default {default}\n")
    (conf / "policy" / "no_target.yaml").write_text("lr: 1.0\n")
    return conf


class Toy:
    def __init__(self, features=None, width: int = 3, name: str = "toy", sizes: tuple = (1, 2)) -> None:
        self.width = width


def _stored(name: str) -> dict:
    node = ConfigStore.instance().repo["schema"]["policy"][f"{name}.yaml"].node
    return dict(node)


def test_cache_is_written_then_used_without_importing(tmp_path: Path, monkeypatch):
    conf, cache = _conf(tmp_path), tmp_path / "cache"
    assert schema.register_schemas(["policy"], conf, cache_dir=cache) == ["policy/toy"]
    files = list(cache.glob("*.json"))
    assert len(files) == 1
    written = json.loads(files[0].read_text())["schemas"]
    assert written == {"policy/toy": {"_target_": f"{__name__}.Toy", "width": 3, "name": "toy", "sizes": [1, 2]}}
    assert list(written["policy/toy"]) == ["_target_", "width", "name", "sizes"]  # the constructor's order

    def no_import(target):
        raise AssertionError(f"{target} was imported although its schema is cached")

    monkeypatch.setattr(schema, "signature_defaults", no_import)
    assert schema.register_schemas(["policy"], conf, cache_dir=cache) == ["policy/toy"]
    assert _stored("toy") == written["policy/toy"]


def test_a_changed_yaml_or_source_file_recomputes(tmp_path: Path, monkeypatch):
    conf, cache = _conf(tmp_path), tmp_path / "cache"
    schema.register_schemas(["policy"], conf, cache_dir=cache)
    first = list(cache.glob("*.json"))
    calls = []
    real = schema.signature_defaults
    monkeypatch.setattr(schema, "signature_defaults", lambda t: calls.append(t) or real(t))

    _conf(tmp_path, default=4)  # the yaml's bytes change
    schema.register_schemas(["policy"], conf, cache_dir=cache)
    assert calls == [f"{__name__}.Toy"]
    second = list(cache.glob("*.json"))
    assert len(second) == 1 and second != first  # the stale file of this conf tree is dropped

    key = schema.cache_key(schema._group_targets(["policy"], conf))
    package_file = sorted(schema.PACKAGE_DIR.rglob("*.py"))[0]
    monkeypatch.setattr(schema, "_stat_line", lambda p: f"{p}\0edited\n" if p == package_file else f"{p}\n")
    assert schema.cache_key(schema._group_targets(["policy"], conf)) != key


def test_a_tampered_cache_entry_is_not_trusted(tmp_path: Path):
    """A cached node whose _target_ differs from the yaml's is recomputed, never instantiated from the cache."""
    conf, cache = _conf(tmp_path), tmp_path / "cache"
    schema.register_schemas(["policy"], conf, cache_dir=cache)
    path = next(cache.glob("*.json"))
    path.write_text(json.dumps({"schemas": {"policy/toy": {"_target_": "os.system", "command": "true"}}}))
    schema.register_schemas(["policy"], conf, cache_dir=cache)
    assert _stored("toy")["_target_"] == f"{__name__}.Toy"
    assert json.loads(path.read_text())["schemas"]["policy/toy"]["_target_"] == f"{__name__}.Toy"
    path.write_text("not json")
    assert schema.register_schemas(["policy"], conf, cache_dir=cache) == ["policy/toy"]


def test_no_cache_and_unwritable_cache_still_register(tmp_path: Path):
    conf = _conf(tmp_path)
    assert schema.register_schemas(["policy"], conf, cache_dir=False) == ["policy/toy"]
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert schema.register_schemas(["policy"], conf, cache_dir=blocker / "sub") == ["policy/toy"]


def test_import_failures_are_skipped_and_not_cached(tmp_path: Path):
    conf, cache = _conf(tmp_path), tmp_path / "cache"
    (conf / "policy" / "missing.yaml").write_text("_target_: robolearn_no_such_module.Policy\n")
    assert schema.register_schemas(["policy"], conf, cache_dir=cache) == ["policy/toy"]
    assert list(json.loads(next(cache.glob("*.json")).read_text())["schemas"]) == ["policy/toy"]


@pytest.mark.timeout(300)
def test_train_help_imports_no_torch(tmp_path: Path):
    """`python train.py --help` composes from the cached schemas and imports neither torch nor lightning."""
    env_cache = tmp_path / "xdg"
    schema.register_schemas(cache_dir=env_cache / "robolearn" / "config_schemas")  # what a first start writes
    code = ("import runpy, sys; sys.argv = ['train.py', '--help']\n"
            "try:\n    runpy.run_path('train.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('IMPORTED', sorted(m for m in ('torch', 'lightning', 'transformers') if m in sys.modules))")
    env = {"XDG_CACHE_HOME": str(env_cache), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert "== Config ==" in out.stdout or "Configuration groups" in out.stdout, out.stdout[-2000:]
    assert "IMPORTED []" in out.stdout, out.stdout[-500:]
