"""The native runner's load engine on one event loop: connections, open/closed-loop scheduling,
timeouts, reconnects, and per-second binning of raw nanosecond timings into histograms.

Hot-path data are two `array('q')` buffers appended per response and emptied every second into
`Histogram.record_ns`, so memory stays flat however long the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import ssl
import time
from array import array
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from time import perf_counter_ns

import numpy as np

from meshlab.profile import RunSpec
from meshlab.progress import Progress, ProgressCallback
from meshlab.results import ErrorKind, Histogram
from meshlab.runners._http import Conn, HeadConn, build_request, ssl_context, target_address
from meshlab.runners._pacing import ShapeTicker, Ticker
from meshlab.runners._partial import Partial, Second
from meshlab.runners._stall import StallWatch
from meshlab.runners._unsent import schedule_unsent_histogram, unsent_histogram
from meshlab.shape import SendSchedule

NS = 1_000_000_000
MIN_TICK_NS = 50_000            # open loop: at most one pacing wake-up per 50 us (20k/s)
SWEEP_S = 0.05                  # timeout sweep period (shorter for timeouts under 0.2 s)
BACKOFF_S = (0.002, 0.01, 0.05, 0.1, 0.2)   # reconnect delays after consecutive failures
_FOREVER = 1 << 62
class Engine:
    """Drives `spec.connections` connections against `spec.target` on the running loop."""

    def __init__(self, spec: RunSpec, *, progress: ProgressCallback | None = None,
                 keep_second_buckets: bool = False,
                 start_gate: Callable[[], Awaitable[int]] | None = None) -> None:
        self.spec = spec
        self.host, self.port, tls = target_address(spec.target)
        self.ssl = ssl_context(tls)
        self.request = build_request(spec)
        self.head_request = spec.method == "HEAD"
        self.closed_loop = not spec.open_loop
        self.spread = spec.spread_connections
        self.progress = progress
        self.keep_second_buckets = keep_second_buckets
        self.start_gate = start_gate
        self.timeout_ns = int(spec.timeout_s * NS)
        self.sweep_s = max(min(SWEEP_S, spec.timeout_s / 4), 0.001)
        # hot-path state, touched by Conn
        self.codes = [0] * 1000
        self.lat = array("q")
        self.svc = array("q")
        self.lat_append = self.lat.append
        self.svc_append = self.svc.append
        self.bytes_rx = 0
        self.running = False
        self.remaining = _FOREVER
        # transport errors (attempts that got no response)
        self.terr = 0
        self.kinds: dict[str, int] = {}
        self.last_kind = ErrorKind.CONNECT_REFUSED
        # open loop
        self.t0 = 0
        self.period_ns = NS / spec.rate_rps if spec.open_loop else 0.0
        # any shape but constant: intended times from the shape's schedule (None: seq * period)
        self.sched = (SendSchedule(spec.shape, rate_rps=spec.rate_rps, duration_s=spec.duration_s,
                                   warmup_s=spec.warmup_s)
                      if spec.open_loop and spec.shape.kind != "constant" else None)
        self.next_seq = 0                 # non-spread: next unsent sequence number
        self.seq_due = 0                  # spread: sequence numbers < seq_due were dispatched
        self.due_seen = 0                 # non-spread: sequence numbers < due_seen came due
        self.idle: list[Conn] = []
        conn_cls = HeadConn if self.head_request else Conn
        self.conns = [conn_cls(self, i) for i in range(spec.connections)]
        # bookkeeping
        self.measuring = False
        self.measure_start_ns = 0
        self.end_ns = 0
        self.last_flush_ns = 0
        self.flushed_terr = 0
        self.flushed_err_codes = 0
        self.cpu0_ns = 0                  # the sending thread's CPU time at the window start
        self.stall = StallWatch()
        self.result: Partial | None = None
        self._done: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # one pending timer per purpose ("sweep", "second", ..., or a connection index for its
        # reconnect), so a day-long run does not pile up fired handles
        self._timers: dict[str | int, asyncio.TimerHandle] = {}
        self._ticker: Ticker | ShapeTicker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # lifecycle ----------------------------------------------------------------------------
    async def run(self) -> Partial:
        """Connect, (wait for the start gate,) warm up, measure, and return what was measured.
        Cancellation ends the run early and returns the partial measurement, marked aborted."""
        loop = self._loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        started = datetime.now(UTC)
        self.result = Partial(started_at=started, ended_at=started)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(self._connect(c, initial=True) for c in self.conns)),
                    timeout=min(self.spec.timeout_s, 5.0) + 1.0)
            self.t0 = await self.start_gate() if self.start_gate else perf_counter_ns()
            self._start(loop)
            await asyncio.shield(self._done)
        except asyncio.CancelledError:
            self.stop()
        finally:
            self._cleanup()
        return self.result

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        spec = self.spec
        self.running = True
        self.result.started_at = datetime.now(UTC)  # type: ignore[union-attr]
        warm_ns = int(spec.warmup_s * NS)
        self.measure_start_ns = self.t0 + warm_ns
        self._at(self.measure_start_ns, self._begin_measure, "measure")
        if spec.warmup_s > 0:
            self._progress("warmup", 0.0)
        self._timers["sweep"] = loop.call_later(self.sweep_s, self._sweep)
        if self.closed_loop:
            t = perf_counter_ns()
            for c in self.conns:
                if c.connected and not c.busy:
                    c.send(t)
        else:
            self.idle = [c for c in self.conns if c.connected]
            if self.sched is not None:
                self._ticker = ShapeTicker(loop, self._tick, start_ns=self.t0,
                                           first_ns=self.due_ns(0), min_gap_ns=MIN_TICK_NS)
            else:
                interval = max(int(self.period_ns), MIN_TICK_NS)
                self._ticker = Ticker(loop, self._tick, start_ns=self.t0, interval_ns=interval)

    def _at(self, t_ns: int, fn: Callable[[], None], key: str) -> None:
        assert self._loop is not None
        delay_s = max(t_ns - perf_counter_ns(), 0) / NS
        self._timers[key] = self._loop.call_later(delay_s, fn)

    def stop(self) -> None:
        """End the run now (cancellation): the measurement so far is returned, aborted."""
        if self.result is not None and self._done is not None and not self._done.done():
            self.result.aborted = True
            self.finish()

    def finish(self) -> None:
        """End of the measured window (duration, max_requests or stop): final flush."""
        if self._done is None or self._done.done():
            return
        self.running = False
        now = perf_counter_ns()
        if self.measuring:
            self._flush(now, final=True)
            self._close_window(now)
        else:
            assert self.result is not None
            self.result.aborted = True
        self.remaining = _FOREVER
        self._done.set_result(None)
        res = self.result
        assert res is not None
        self._progress("done", res.duration_s)

    def _cleanup(self) -> None:
        self.running = False
        if self._ticker is not None:
            self._ticker.close()
        for h in self._timers.values():
            h.cancel()
        for t in self._tasks:
            t.cancel()
        for c in self.conns:
            c.close()
        assert self.result is not None
        self.result.ended_at = datetime.now(UTC)

    # connections --------------------------------------------------------------------------
    async def _connect(self, conn: Conn, *, initial: bool = False) -> None:
        assert self._loop is not None
        kind: ErrorKind | None = None
        try:
            await asyncio.wait_for(self._loop.create_connection(
                lambda: conn, self.host, self.port, ssl=self.ssl,
                server_hostname=self.host if self.ssl else None), timeout=self.spec.timeout_s)
        except TimeoutError:
            kind = ErrorKind.CONNECT_TIMEOUT
        except ConnectionRefusedError:
            kind = ErrorKind.CONNECT_REFUSED
        except ConnectionResetError:
            kind = ErrorKind.RESET
        except ssl.SSLError:                # handshake or certificate verification failed
            kind = ErrorKind.PROTOCOL
        except OSError as exc:            # e.g. "Multiple exceptions" for ::1 and 127.0.0.1
            refused = exc.errno == errno.ECONNREFUSED or f"[Errno {errno.ECONNREFUSED}]" in str(exc)
            kind = ErrorKind.CONNECT_REFUSED if refused else ErrorKind.OTHER
        if kind is not None:
            conn.failures += 1
            self.last_kind = kind
            if self.closed_loop and not initial and self.running:
                self._count(kind)           # a closed-loop attempt that could not be sent
            if self.retrying():
                delay = BACKOFF_S[min(conn.failures, len(BACKOFF_S)) - 1]
                self._timers[conn.idx] = self._loop.call_later(delay, self._reconnect, conn)
            return
        if self.running:
            self._ready(conn)

    def retrying(self) -> bool:
        """Whether a failed connection tries again: until the run is over, whatever phase it
        failed in. (A retry that failed while the other connections were still handshaking, or
        while a start gate held the run, used to give up for good: 0 requests in the run.)"""
        return self._done is not None and not self._done.done()

    def _reconnect(self, conn: Conn) -> None:
        if self.retrying() and not conn.connected and conn.transport is None:
            task = asyncio.ensure_future(self._connect(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _ready(self, conn: Conn) -> None:
        if self.closed_loop:
            conn.send(perf_counter_ns())
        else:
            self.pull(conn, perf_counter_ns())

    def on_lost(self, conn: Conn) -> None:
        if self.running:
            if conn in self.idle:
                self.idle.remove(conn)
            self._reconnect(conn)

    def fail(self, conn: Conn, kind: ErrorKind) -> None:
        """An in-flight request ended without a response."""
        self._count(kind)

    def _count(self, kind: ErrorKind, n: int = 1) -> None:
        """`n` attempts failed without a response."""
        self.terr += n
        self.kinds[kind] = self.kinds.get(kind, 0) + n
        self.remaining -= n
        if self.remaining <= 0:
            self.remaining = 0
            self.finish()

    def _sweep(self) -> None:
        """Time out requests in flight for longer than spec.timeout_s; reopen their
        connections (open loop: the queued requests keep their intended times)."""
        assert self._loop is not None
        now = perf_counter_ns()
        limit = self.timeout_ns
        if self.measuring:
            self.stall.observe(now, sum(self.codes), limit_ns=limit,
                               outstanding=any(c.busy for c in self.conns))
        for c in self.conns:
            if c.busy and now - (c.t_int if self.closed_loop else c.t_sent) > limit:
                c.busy = False
                c.close()
                self.fail(c, ErrorKind.TIMEOUT)
        if self.running:
            self._timers["sweep"] = self._loop.call_later(self.sweep_s, self._sweep)

    # open loop ----------------------------------------------------------------------------
    def due_ns(self, seq: int) -> int:
        """The intended send time of request `seq` (perf_counter_ns clock)."""
        if self.sched is None:
            return self.t0 + int(seq * self.period_ns)
        return self.t0 + int(self.sched.time_s(seq) * NS)

    def due_count(self, now: int) -> int:
        """How many requests are due by `now`: sequence numbers below it."""
        if self.sched is None:
            return int((now - self.t0) / self.period_ns) + 1
        return self.sched.due((now - self.t0) / NS)

    def pull(self, conn: Conn, now: int) -> None:
        """Open loop: `conn` is idle; send the oldest request already due for it, if any."""
        if not self.running or not conn.connected:
            return
        if self.spread:
            due = self.due_ns(conn.next_seq)
            if due <= now:
                conn.next_seq += len(self.conns)
                conn.send(due)
        else:
            due = self.due_ns(self.next_seq)
            if due <= now:
                self.next_seq += 1
                conn.send(due)
            else:
                self.idle.append(conn)

    def _tick(self) -> None:
        """Pacing wake-up: dispatch every request whose intended time has passed."""
        if not self.running:
            return
        now = perf_counter_ns()
        due = self.due_count(now)                   # sequence numbers < due are due
        self.due_seen = due
        if self.spread:
            conns = self.conns
            n = len(conns)
            for seq in range(self.seq_due, due):
                c = conns[seq % n]
                if c.connected:
                    if not c.busy and c.next_seq == seq:
                        c.next_seq += n
                        c.send(self.due_ns(seq))
                elif c.transport is None and c.failures:   # down: fail fast, do not queue
                    k = (seq - c.next_seq) // n + 1
                    c.next_seq += k * n
                    self._fail_many(k)
            self.seq_due = due
        else:
            idle = self.idle
            while self.next_seq < due and idle:
                c = idle.pop()
                if c.connected and not c.busy:
                    c.send(self.due_ns(self.next_seq))
                    self.next_seq += 1
            if self.next_seq < due and not any(c.connected or not c.failures
                                               for c in self.conns):
                self._fail_many(due - self.next_seq)
                self.next_seq = due
        if isinstance(self._ticker, ShapeTicker):
            self._ticker.next_at(self.due_ns(due))

    def _fail_many(self, n: int) -> None:
        self._count(self.last_kind, n)

    # measurement --------------------------------------------------------------------------
    def _begin_measure(self) -> None:
        now = perf_counter_ns()
        del self.lat[:]
        del self.svc[:]
        self.codes[:] = [0] * len(self.codes)
        self.terr = 0
        self.kinds.clear()
        self.bytes_rx = 0
        self.measuring = True
        self.measure_start_ns = self.last_flush_ns = now
        self.flushed_terr = self.flushed_err_codes = 0
        self.cpu0_ns = time.thread_time_ns()
        self.stall.reset(now)
        self.result.window_start_s = (now - self.t0) / NS  # type: ignore[union-attr]
        if self.spec.max_requests:
            self.remaining = self.spec.max_requests
        self.end_ns = now + int(self.spec.duration_s * NS)
        self._at(self.end_ns, self.finish, "end")
        if now + NS < self.end_ns - NS // 10:
            self._at(now + NS, self._second, "second")

    def _close_window(self, now: int) -> None:
        """End of the measured window: the sender's CPU time, stalls, and (open loop) the
        requests the pacer found due that no connection ever sent: part of the offered load,
        they join the corrected latency at their age now."""
        res = self.result
        assert res is not None
        res.cpu_s = (time.thread_time_ns() - self.cpu0_ns) / NS
        self.stall.close(now)
        stalled = self.stall.warning(self.spec.timeout_s)
        if stalled:
            res.warnings.append(stalled)
        if self.closed_loop or self.period_ns <= 0:
            return
        owed = [c.next_seq for c in self.conns] if self.spread else [self.next_seq]
        stop_seq = self.seq_due if self.spread else self.due_seen
        if self.sched is not None:
            unsent = schedule_unsent_histogram(
                self.sched, age_at_s=(now - self.t0) / NS, spread=self.spread, owed=owed,
                window_seq=self.due_count(self.measure_start_ns - 1), stop_seq=stop_seq)
            res.unsent_requests = unsent.total
            res.latency.merge(unsent)
            return
        unsent = unsent_histogram(
            end_ns=now, t0_ns=self.t0, period_ns=self.period_ns,
            window_start_ns=self.measure_start_ns, spread=self.spread,
            owed=[c.next_seq for c in self.conns] if self.spread else [self.next_seq],
            stop_seq=self.seq_due if self.spread else self.due_seen)
        res.unsent_requests = unsent.total
        res.latency.merge(unsent)

    def _second(self) -> None:
        if self.running:
            self._flush(perf_counter_ns())
            nxt = self.last_flush_ns + NS
            if nxt < self.end_ns - NS // 10:       # the last (partial) second is finish()'s
                self._at(nxt, self._second, "second")

    def _flush(self, now: int, *, final: bool = False) -> None:
        """Bin the raw timings gathered since the last flush (one second, or the tail)."""
        res = self.result
        assert res is not None
        lat = np.array(self.lat, dtype=np.int64)
        del self.lat[:]
        sec = Histogram()
        sec.record_ns(lat)
        res.latency.merge(sec)
        if not self.closed_loop:
            svc = np.array(self.svc, dtype=np.int64)
            del self.svc[:]
            res.service_time.record_ns(svc)
        err_codes = sum(self.codes[400:])
        errors = (self.terr - self.flushed_terr) + (err_codes - self.flushed_err_codes)
        requests = len(lat) + self.terr - self.flushed_terr
        self.flushed_terr, self.flushed_err_codes = self.terr, err_codes
        span_ns = now - self.last_flush_ns
        self.last_flush_ns = now
        if not final or requests or span_ns >= NS // 2:
            res.seconds.append(Second(
                requests, errors, sec.percentile_us(50), sec.percentile_us(99),
                sec.nonzero_buckets() if self.keep_second_buckets else None))
        res.requests += requests
        res.errors += errors
        res.duration_s = (now - self.measure_start_ns) / NS
        if final:
            if self.closed_loop:
                res.service_time = res.latency.copy()
            res.status_codes = {i: n for i, n in enumerate(self.codes) if n}
            res.error_kinds = {str(k): n for k, n in self.kinds.items()}
            res.bytes_received = self.bytes_rx
            return
        rate = requests / (span_ns / NS) if span_ns else 0.0
        self._progress("measure", res.duration_s, sec, rate)

    def _progress(self, phase: str, elapsed_s: float, sec: Histogram | None = None,
                  rate: float = 0.0) -> None:
        if self.progress is None:
            return
        res = self.result
        assert res is not None
        total = self.spec.warmup_s if phase == "warmup" else self.spec.duration_s
        p50 = sec.percentile_us(50) if sec else math.nan
        p99 = sec.percentile_us(99) if sec else math.nan
        try:
            self.progress(Progress(phase, elapsed_s, total, res.requests, res.errors,
                                   p50, p99, rate))
        except Exception:                      # a broken progress display never stops a run
            self.progress = None
