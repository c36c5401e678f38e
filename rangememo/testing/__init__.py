"""Test helpers for code that uses rangememo, and for stores written for it.

* :class:`FakeProvider`, :func:`make_bars`, :func:`make_blocks`: deterministic
  range-queried providers (see :mod:`rangememo.testing.providers`);
* :class:`StoreContract` and :class:`Backend`: the contract every
  :class:`~rangememo.Store` must honour, as a pytest test class to subclass
  (see :mod:`rangememo.testing.store_contract`; loaded on first use, as it
  needs pytest)::

      import pytest
      from rangememo.testing import Backend, StoreContract

      @pytest.fixture
      def backend(tmp_path):
          return Backend(MyStore(tmp_path), reopen=lambda: MyStore(tmp_path))

      class TestMyStore(StoreContract):
          pass
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .providers import Call, FakeProvider, make_bars, make_blocks

if TYPE_CHECKING:
    from .store_contract import Backend, StoreContract

__all__ = ["Backend", "Call", "FakeProvider", "StoreContract", "make_bars", "make_blocks"]


def __getattr__(name: str) -> Any:
    # The contract imports pytest: only its users pay for it.
    if name in {"Backend", "StoreContract"}:
        from . import store_contract

        return getattr(store_contract, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
