"""How the CLI reports Ctrl-C: what committed, even when its clean-up is cancelled again."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel
import pytest

from cli.interrupts import InterruptedAfter, interrupted_after, run_interruptibly


async def test_what_committed_is_reported_when_clean_up_is_cancelled_again() -> None:
    """Ctrl-C inside ``interrupted_after``, then an unshielded await of the clean-up
    outside it (a store closing) cancelled again: the report of what committed stands,
    not a plain interruption (``metaledger import`` said "the store is intact" about 1
    run in 20 of tests/test_interrupts.py)."""

    async def describe() -> str:
        return "3 events were stored."

    @asynccontextmanager
    async def closing() -> AsyncIterator[None]:
        try:
            yield
        finally:
            await anyio.lowlevel.checkpoint()  # not shielded: cancelled again

    async def command() -> None:
        async with closing(), interrupted_after(describe):
            signal.raise_signal(signal.SIGINT)
            await anyio.sleep(10)

    # KeyboardInterrupt is caught too, so a regression fails this test, not the session.
    with pytest.raises((InterruptedAfter, KeyboardInterrupt)) as caught:
        await run_interruptibly(command)
    assert isinstance(caught.value, InterruptedAfter)
    assert "3 events were stored." == caught.value.message


async def test_a_plain_interruption_stays_plain() -> None:
    """Ctrl-C where nothing reported a commit: KeyboardInterrupt (the CLI's "intact")."""

    async def command() -> None:
        signal.raise_signal(signal.SIGINT)
        await anyio.sleep(10)

    with pytest.raises(KeyboardInterrupt):
        await run_interruptibly(command)
