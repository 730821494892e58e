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
