"""Safety rules that hold for the whole package: nothing is unpickled, the preview server is
local by default, listings read only the package's own source."""
from __future__ import annotations

import ast
import socket
from pathlib import Path

import pytest

from generator import serve
from generator.render import listings
from generator.cli import main
from generator.core.errors import ContentError
from generator.core.project import Project

PACKAGE = Path(serve.__file__).resolve().parents[1]      # serve is a package: generator/serve/


def calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            owner = ast.unparse(f.value) if isinstance(f, ast.Attribute) else ""
            yield owner, name, {k.arg: k.value for k in node.keywords}


# The one exception to "no marshal": compiled page templates in .cache/lora-site/jinja, read
# by render.jinja.CodeCache exactly as Python reads its own __pycache__ (local to the machine, never
# committed or published, checked against the template source and the Python and Jinja
# versions). Nothing in content/ (the freeze) or site/ is ever loaded as code.
MARSHAL_ALLOWED = {("render/jinja.py", "CodeCache")}


def _imports(tree: ast.AST, owner: str = ""):
    """(class the import sits in, or '', imported top-level names) for every import."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.ClassDef):
            yield from _imports(node, node.name)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            yield owner, {n.split(".")[0] for n in names}
        yield from _imports(node, owner)


@pytest.mark.parametrize("module", sorted(p.relative_to(PACKAGE).as_posix()
                                          for p in PACKAGE.rglob("*.py")
                                          if "__pycache__" not in p.parts))
def test_no_module_can_unpickle(module):
    """np.load only with allow_pickle=False, torch.load only with weights_only=True, no pickle
    or shelve at all, and marshal only where MARSHAL_ALLOWED says: no results file, and no cache
    file other than compiled templates, can run code."""
    source = (PACKAGE / module).read_text(encoding="utf-8")
    tree = ast.parse(source)
    for owner, names in _imports(tree):
        assert not {"pickle", "cPickle", "shelve", "dill", "joblib"} & names, \
            f"{module} imports an unpickler"
        if "marshal" in names:
            assert (module, owner) in MARSHAL_ALLOWED, f"{module} ({owner or 'module'}) uses marshal"
    for owner, name, kw in calls(tree):
        if name == "load" and owner in ("np", "numpy"):
            assert "allow_pickle" in kw and ast.literal_eval(kw["allow_pickle"]) is False, module
        if name == "load" and owner == "torch":
            assert "weights_only" in kw and ast.literal_eval(kw["weights_only"]) is True, module


def test_serve_listens_on_loopback_by_default(tmp_path):
    option = next(p for p in main.commands["serve"].params if p.name == "host")
    assert option.default == "127.0.0.1"
    server = serve.PreviewServer(Project(tmp_path), port=0, log=lambda line: None)
    try:
        host, _ = server.httpd.socket.getsockname()[:2]
        assert host == "127.0.0.1"
        assert server.httpd.socket.family == socket.AF_INET
    finally:
        server.httpd.server_close()


def test_listing_follows_no_symlink_out_of_the_package(tmp_path, monkeypatch):
    """A module file that is a symlink to a file elsewhere is refused like a path would be."""
    fake_pkg = tmp_path / "generator"
    fake_pkg.mkdir()
    secret = tmp_path / "secret.py"
    secret.write_text("def leak():\n    return 'secret'\n")
    (fake_pkg / "innocent.py").symlink_to(secret)
    (fake_pkg / "real.py").write_text("def ok():\n    return 1\n")
    monkeypatch.setattr(listings, "PACKAGE_DIR", fake_pkg.resolve())
    assert "return 1" in listings.listing("real", "ok")
    with pytest.raises(ContentError, match="no module generator/innocent.py"):
        listings.listing("innocent", "leak")
