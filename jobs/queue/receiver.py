"""fleetprobe's own taskiq receiver: fetches a batch, decodes it, starts its tasks, acks each.

taskiq's ``Receiver`` spends per message what fleetprobe does not need: two helper tasks
and two ``asyncio.wait`` to take one message from the broker's generator, a queue between
a prefetcher and a runner, a pydantic ``TaskiqMessage``, a ``TypeAdapter`` built for the
argument, a dependency-injection context even for a task with no dependency, and a
``TaskiqResult`` for a result backend that drops it (docs/performance.md).
:class:`BatchReceiver` pulls as many messages as it has room for in one fetch
(:meth:`jobs.queue.broker.FleetprobeBroker.fetch`), decodes them with msgspec, validates
the argument with an adapter built once per task, and starts one asyncio task per
message.  Used by the in-process worker (``jobs.queue.inprocess``) and passed to the
worker processes (``taskiq worker worker:broker --receiver jobs.queue.receiver:BatchReceiver``,
:data:`RECEIVER`).

The guarantees are taskiq's (docs/reliability.md):

- a message is acknowledged after its task returned (``when_saved``, the default: the
  probe task returns once its row committed); ``--ack-type when_received`` or the
  ``ack_type`` label acks it first; a task that raised is logged and acknowledged, as
  taskiq does;
- at most ``max_async_tasks`` tasks run at once; a ``timeout`` label bounds a task;
- on stop no message is fetched any more, running tasks get ``wait_tasks_timeout``
  seconds, what is left is cancelled and **not** acknowledged: the broker's shutdown
  hands it back (``nak``) with whatever was fetched and not started; a pull open at the
  stop is let end (within its one-second timeout) instead of being cancelled, so what
  it brings is handed back too rather than left to ``ack_wait``;
- a task name this worker lacks is refused by the broker's fetch (``nak`` with a delay,
  then the worker stops); a message that does not decode is logged and acknowledged.

taskiq's ``--max-prefetch`` has no use here: a fetch takes only what fits under the limit.

A task this fast path does not cover (a sync function, one with taskiq dependencies,
a broker with middlewares or a result backend, a broker that is not fleetprobe's) runs
through taskiq's own ``Receiver.callback`` in the same slots, or the whole receiver falls
back to taskiq's ``listen``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.aio.msg import Msg
from pydantic import TypeAdapter
from taskiq import AckableMessage, AsyncBroker
from taskiq.abc.result_backend import AsyncResultBackend
from taskiq.acks import AcknowledgeType, parse_acknowledge_type
from taskiq.exceptions import NoResultError
from taskiq.receiver import Receiver
from taskiq.result_backends.dummy import DummyResultBackend

from jobs.queue.broker import FleetprobeBroker

log = logging.getLogger(__name__)

# What `taskiq worker --receiver` takes (scheduler.py's worker processes, the bench's).
RECEIVER = "jobs.queue.receiver:BatchReceiver"


class _Message(msgspec.Struct):
    """The taskiq message as ``jobs.queue.kick`` (and taskiq's kicker) writes it."""

    task_id: str
    task_name: str
    labels: dict[str, Any] = {}
    args: list[Any] = []
    kwargs: dict[str, Any] = {}


_decode = msgspec.json.Decoder(_Message).decode


@dataclass(frozen=True, slots=True)
class _Task:
    """A registered task the fast path runs: its coroutine function and the adapters of
    its parameters (positional, then by name), built once."""

    func: Callable[..., Awaitable[Any]]
    positional: tuple[TypeAdapter[Any] | None, ...]
    named: dict[str, TypeAdapter[Any]]


class BatchReceiver(Receiver):  # type: ignore[misc]
    """A taskiq ``Receiver`` (what ``taskiq worker --receiver`` requires) with its own
    ``listen`` for fleetprobe's broker."""

    def __init__(
        self,
        broker: AsyncBroker,
        executor: Executor | None = None,
        validate_params: bool = True,
        max_async_tasks: int | None = None,
        max_async_tasks_jitter: int = 0,
        max_prefetch: int = 0,
        propagate_exceptions: bool = True,
        run_startup: bool = True,
        ack_type: AcknowledgeType | None = None,
        on_exit: Callable[[Receiver], None] | None = None,
        max_tasks_to_execute: int | None = None,
        wait_tasks_timeout: float | None = None,
    ) -> None:
        limit = max_async_tasks if max_async_tasks is not None and max_async_tasks > 0 else None
        if limit is not None and max_async_tasks_jitter > 0:
            # As taskiq: spreads workers that would all reach their limit at once.
            limit += random.randint(0, max_async_tasks_jitter)
        super().__init__(
            broker,
            executor=executor,
            validate_params=validate_params,
            max_async_tasks=limit,
            max_prefetch=max_prefetch,
            propagate_exceptions=propagate_exceptions,
            run_startup=run_startup,
            ack_type=ack_type,
            on_exit=on_exit,
            max_tasks_to_execute=max_tasks_to_execute,
            wait_tasks_timeout=wait_tasks_timeout,
        )
        self.limit = limit
        self._running: set[asyncio.Task[None]] = set()
        # Set while a fetch of a useful size fits (see _wait_for_room).
        self._room = asyncio.Event()
        self._room.set()
        self._fast: dict[str, _Task] = {}
        self._last_pull: asyncio.Future[list[Msg]] | None = None
        self._plain_broker = not broker.middlewares and _drops_results(broker.result_backend)
        for task in broker.get_all_tasks().values():
            graph = self.dependency_graphs.get(task.task_name)
            if graph is not None and not graph.is_empty():
                continue  # taskiq's callback resolves its dependencies
            fast = self._fast_task(task.original_func)
            if fast is not None:
                self._fast[task.task_name] = fast

    def _fast_task(self, func: Callable[..., Any]) -> _Task | None:
        """The fast path's view of a task, or None when taskiq's callback must run it."""
        if not self._plain_broker or not inspect.iscoroutinefunction(func):
            return None
        positional: list[TypeAdapter[Any] | None] = []
        named: dict[str, TypeAdapter[Any]] = {}
        hints = inspect.get_annotations(func, eval_str=True)
        for param in inspect.signature(func).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                return None
            hint = hints.get(param.name)
            adapter = TypeAdapter(hint) if hint is not None and self.validate_params else None
            if param.kind is not param.KEYWORD_ONLY:
                positional.append(adapter)
            if adapter is not None:
                named[param.name] = adapter
        return _Task(func, tuple(positional), named)

    @property
    def _batch(self) -> int:
        broker = self.broker
        return int(broker.pull_consume_batch) if isinstance(broker, FleetprobeBroker) else 1

    def _low_water(self) -> int:
        """The fewest free slots worth a fetch while tasks run: a quarter of the limit or
        a fetch batch, whichever is smaller (one slot at a time would be a fetch a task)."""
        assert self.limit is not None
        return max(1, min(self._batch, self.limit // 4))

    async def listen(self, finish_event: asyncio.Event) -> None:
        broker = self.broker
        if not isinstance(broker, FleetprobeBroker) or self.limit is None:
            await super().listen(finish_event)
            return
        if self.run_startup:
            await broker.startup()
        broker.log_listening()
        finish = asyncio.ensure_future(finish_event.wait())
        error: BaseException | None = None
        # A pull still open when the stop came: let it end (within the pull's timeout)
        # rather than cancel it, so what it brings is ours to hand back at once.
        self._last_pull = None
        try:
            await self._receive(broker, finish)
        except asyncio.CancelledError:
            if self._last_pull is not None:
                self._last_pull.cancel()
            self._cancel_running()
            await self._settle()
            raise
        except Exception as exc:  # a refused task, a broken connection: stop, then raise
            error = exc
        except BaseException:  # KeyboardInterrupt (taskiq's hard kill), SystemExit
            self._cancel_running()
            raise
        finally:
            finish.cancel()
        try:
            await self._drain()
        finally:
            if self._last_pull is not None:
                await self._end_pull(self._last_pull)
        if error is not None:
            raise error
        if self.on_exit is not None:
            self.on_exit(self)

    async def _receive(self, broker: FleetprobeBroker, finish: asyncio.Future[Any]) -> None:
        """Fetch what fits and start it, until ``finish``."""
        assert self.limit is not None
        fetched = 0
        while not finish.done():
            if self.max_tasks_to_execute and fetched >= self.max_tasks_to_execute:
                log.info("max number of tasks fetched count=%d", fetched)
                return
            if not await self._wait_for_room(finish):
                return
            room = self.limit - len(self._running)
            if self.max_tasks_to_execute:
                room = min(room, self.max_tasks_to_execute - fetched)
            pull = asyncio.ensure_future(broker.fetch(min(self._batch, room)))
            await asyncio.wait((pull, finish), return_when=asyncio.FIRST_COMPLETED)
            if not pull.done():
                # Stopping.  Cancelling the pull would leave its request open on the
                # server: what it delivers after that would reach no one and come back
                # only after ack_wait.  It ends by itself within its timeout; its
                # messages are never started, the broker's shutdown hands them back.
                self._last_pull = pull
                return
            messages = pull.result()
            if finish.done():
                return  # not started: the broker's shutdown hands them back
            fetched += len(messages)
            self._start(broker, messages)

    async def _end_pull(self, pull: asyncio.Future[list[Msg]]) -> None:
        """Wait for a pull left open at the stop (its fetch returns within its timeout);
        its messages stay unacknowledged: the broker's shutdown hands them back."""
        broker = self.broker
        timeout = float(getattr(broker, "pull_consume_timeout", 1.0)) + 2.0
        try:
            await asyncio.wait_for(pull, timeout)
        except asyncio.CancelledError:
            pull.cancel()
            raise
        except Exception as exc:  # timed out (then cancelled), NATS gone, a refusal
            log.debug("the last pull ended error=%r", exc)
        else:
            if pull.result():
                log.info("fetched while stopping, not started count=%d", len(pull.result()))

    async def _wait_for_room(self, finish: asyncio.Future[Any]) -> bool:
        """Wait until a fetch of a useful size fits; False when stopping first."""
        assert self.limit is not None
        if self.limit - len(self._running) >= self._low_water():
            return True
        self._room.clear()
        room = asyncio.ensure_future(self._room.wait())
        try:
            await asyncio.wait((room, finish), return_when=asyncio.FIRST_COMPLETED)
        finally:
            room.cancel()
        return not finish.done()

    def _start(self, broker: FleetprobeBroker, messages: list[Msg]) -> None:
        """Decode a fetched batch and start a task per message."""
        for msg in messages:
            try:
                message: _Message | None = _decode(msg.data)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                log.warning("cannot parse message, dropped data=%r error=%s", msg.data[:200], exc)
                message = None
            task = asyncio.create_task(self._run(broker, msg, message))
            self._running.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not self._room.is_set():
            assert self.limit is not None
            if self.limit - len(self._running) >= self._low_water():
                self._room.set()
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("task runner failed error=%r", exc, exc_info=exc)

    async def _run(self, broker: FleetprobeBroker, msg: Msg, message: _Message | None) -> None:
        if message is None:  # as taskiq: logged (above) and acknowledged
            await broker.ack(msg)
            return
        fast = self._fast.get(message.task_name)
        if fast is None:
            if broker.find_task(message.task_name) is None:
                log.warning("task %r is not registered: dropped", message.task_name)
                await broker.ack(msg)
                return
            await self.callback(AckableMessage(data=msg.data, ack=_ack_of(broker, msg)))
            return
        ack_when = self._ack_when(message)
        if ack_when is AcknowledgeType.WHEN_RECEIVED:
            await broker.ack(msg)
        try:
            args, kwargs = self._arguments(fast, message)
            timeout = message.labels.get("timeout")
            if timeout is None:
                await fast.func(*args, **kwargs)
            else:
                async with asyncio.timeout(float(timeout)):
                    await fast.func(*args, **kwargs)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # stopped: not acknowledged (handed back by the broker's shutdown)
            log.exception("task %s id=%s raised", message.task_name, message.task_id)
        except NoResultError:
            log.warning("task %s id=%s skipped its result", message.task_name, message.task_id)
        except Exception:
            log.exception("task %s id=%s raised", message.task_name, message.task_id)
        if ack_when is not AcknowledgeType.WHEN_RECEIVED:
            await broker.ack(msg)

    def _ack_when(self, message: _Message) -> AcknowledgeType:
        label = message.labels.get("ack_type")
        if label is None:
            return self.ack_time  # type: ignore[no-any-return]
        return parse_acknowledge_type(label)

    @staticmethod
    def _arguments(fast: _Task, message: _Message) -> tuple[list[Any], dict[str, Any]]:
        """The task's arguments, each validated as its parameter's annotation says (as
        taskiq: a value that does not validate is passed as it came, with a warning)."""
        args = message.args
        for i, adapter in enumerate(fast.positional[: len(args)]):
            if adapter is not None and args[i] is not None:
                args[i] = _validated(adapter, args[i], message)
        kwargs = message.kwargs
        for name, value in kwargs.items():
            adapter = fast.named.get(name)
            if adapter is not None and value is not None:
                kwargs[name] = _validated(adapter, value, message)
        return args, kwargs

    def _cancel_running(self) -> None:
        for task in self._running:
            task.cancel()

    async def _settle(self) -> None:
        """Wait for the cancelled tasks to end (they do at their next await)."""
        if self._running:
            await asyncio.wait(list(self._running))

    async def _drain(self) -> None:
        """Stopping: running tasks get ``wait_tasks_timeout`` (for ever when None), what
        is left then is cancelled, not acknowledged."""
        if not self._running:
            return
        log.info("waiting for running tasks count=%d", len(self._running))
        try:
            await asyncio.wait(list(self._running), timeout=self.wait_tasks_timeout)
        except asyncio.CancelledError:
            self._cancel_running()
            await self._settle()
            raise
        if self._running:
            log.info("cancelling unfinished tasks count=%d", len(self._running))
            self._cancel_running()
            await self._settle()
        log.info("no more running tasks")


def _validated(adapter: TypeAdapter[Any], value: Any, message: _Message) -> Any:
    try:
        return adapter.validate_python(value)
    except (ValueError, RuntimeError) as exc:
        log.warning("cannot parse an argument of task %s: %s", message.task_name, exc)
        return value


def _drops_results(backend: AsyncResultBackend[Any]) -> bool:
    """Whether the broker's result backend throws results away (fleetprobe's: taskiq's
    dummy), so the fast path need not build them."""
    return type(backend) is DummyResultBackend


def _ack_of(broker: FleetprobeBroker, msg: Msg) -> Callable[[], Awaitable[None]]:
    async def ack() -> None:
        await broker.ack(msg)

    return ack
