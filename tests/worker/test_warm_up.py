"""The handover of the msgpack a warm process decoded ahead (``in_venv/warm_up.py``), on a stand-in
for dbt's ``Manifest`` (no dbt here; ``tests/e2e/test_e2e_warm_up.py`` runs it on real dbt)."""

from __future__ import annotations

import sys
import types

import pytest

from manifest_dag.worker.in_venv.warm_up import Handover


class _Manifest:
    decoded: list[bytes] = []

    def __init__(self, data: bytes) -> None:
        self.data = data

    @classmethod
    def from_msgpack(cls, data: bytes, decoder=None):
        cls.decoded.append(data)
        return cls(data)


class _Later(_Manifest):
    pass


@pytest.fixture
def manifest_cls(monkeypatch):
    _Manifest.decoded = []
    for name in ("dbt", "dbt.contracts", "dbt.contracts.graph"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    module = types.ModuleType("dbt.contracts.graph.manifest")
    module.Manifest = _Manifest  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    original = _Manifest.__dict__["from_msgpack"]
    yield _Manifest
    _Manifest.from_msgpack = original  # type: ignore[method-assign]


def _decoder(x):
    return x


def test_the_first_decode_of_the_same_bytes_gets_the_object_once(manifest_cls) -> None:
    raw = b"\x81\xa5nodes\x80"
    ahead = manifest_cls.from_msgpack(raw, decoder=_decoder)
    handover = Handover()
    notes: list[str] = []
    handover.note = notes.append
    handover.offer(raw, _decoder, ahead, 1.25)
    assert manifest_cls.from_msgpack(raw[:2] + raw[2:], decoder=_decoder) is ahead  # equal bytes, another object
    assert manifest_cls.decoded == [raw]  # only the decode made ahead
    assert notes == [
        "warm dbt: used partial_parse.msgpack as decoded before this task arrived (1.25 s of decoding done ahead)"
    ]
    again = manifest_cls.from_msgpack(raw, decoder=_decoder)  # handed out once: dbt mutates what it loaded
    assert again is not ahead and len(manifest_cls.decoded) == 2
    assert handover.raw is None and handover.manifest is None


@pytest.mark.parametrize(
    "data, decoder, cls",
    [
        (b"\x81\xa5nodes\x81", _decoder, _Manifest),  # other bytes (a re-parsed workspace)
        (b"\x81\xa5nodes\x80", None, _Manifest),  # another decoder than the one decoded with
        (b"\x81\xa5nodes\x80", _decoder, _Later),  # a subclass of Manifest
    ],
)
def test_anything_but_the_same_bytes_and_decoder_is_decoded_as_dbt_would(manifest_cls, data, decoder, cls) -> None:
    raw = b"\x81\xa5nodes\x80"
    ahead = manifest_cls.from_msgpack(raw, decoder=_decoder)
    handover = Handover()
    handover.offer(raw, _decoder, ahead, 0.5)
    got = cls.from_msgpack(data, decoder=decoder)
    assert got is not ahead and isinstance(got, cls) and got.data == data
    assert handover.manifest is ahead  # still on offer for the right bytes


def test_dropped_after_the_first_task_whether_used_or_not(manifest_cls) -> None:
    raw = b"\x80"
    handover = Handover()
    handover.offer(raw, None, object(), 0.1)
    handover.drop()
    assert manifest_cls.from_msgpack(raw).data == raw and manifest_cls.decoded == [raw]


def test_without_dbt_nothing_is_offered(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "dbt.contracts.graph.manifest", None)  # import fails
    handover = Handover()
    handover.offer(b"x", None, object(), 0.1)
    assert handover.raw is None and handover.manifest is None


def test_warm_up_decodes_the_msgpack_as_the_tasks_workspace_will_place_it(manifest_cls, tmp_path) -> None:
    """``prestart`` names the folder of the pod task's workspace: the warm-up rewrites the prepared
    msgpack for it with the same function the workspace uses, so the task's dbt reads the very
    bytes that were decoded ahead, and gets the decoded object."""
    import msgpack

    from manifest_dag.worker.in_venv.warm_up import warm_up
    from manifest_dag.worker.partial_parse import relocate_msgpack

    built = {
        "files": {"shop://models/a.sql": {"path": {"project_root": "/build/shop", "searched_path": "models"}}},
        "nodes": {"model.shop.a": {"original_file_path": "models/a.sql", "root_path": "/build/shop"}},
    }
    prepared = tmp_path / "prepared.msgpack"
    prepared.write_bytes(msgpack.packb(built, use_bin_type=True))
    root = tmp_path / "state" / "workspaces" / "k" / "0" / "project"
    handover = Handover()
    warm_up(str(prepared), handover=handover, root=str(root), project="shop")
    assert handover.manifest is not None and handover.raw is not None
    assert msgpack.unpackb(handover.raw)["nodes"]["model.shop.a"]["root_path"] == str(root)

    ahead = handover.manifest
    # another folder (a second slot): other bytes, decoded as dbt would; the offer stands
    other = tmp_path / "other.msgpack"
    relocate_msgpack(prepared, other, tmp_path / "elsewhere", "shop")
    assert manifest_cls.from_msgpack(other.read_bytes()) is not ahead and handover.manifest is ahead

    placed = tmp_path / "target" / "partial_parse.msgpack"
    placed.parent.mkdir()
    assert relocate_msgpack(prepared, placed, root, "shop") == "/build/shop"
    assert manifest_cls.from_msgpack(placed.read_bytes()) is ahead
    assert len(manifest_cls.decoded) == 2  # the warm-up's decode and the other folder's
