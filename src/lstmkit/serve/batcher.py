"""Concurrent requests batched together, and every model call on one worker thread.

Requests put their texts on an asyncio queue; one loop takes the first, keeps collecting for up to
`max_wait` seconds or until `max_batch` texts wait, predicts them all in one call, and hands each
request its rows. Sixty-four clients sending one text each then cost one forward pass of 64 rows
rather than 64 passes of one (each padded to a batch). The model runs on a single worker thread:
JAX on a 2-core machine gains nothing from concurrent calls, and one thread keeps the compiled
programs' caches from racing. `run` puts any other model call (explain) on the same thread.

    batcher = Batcher(lambda texts: model.predict(texts), max_batch=64, max_wait=0.005)
    await batcher.start()
    proba = await batcher.predict(["a text"])     # that request's rows of the batch
    await batcher.stop()
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor


class Batcher:
    """Collects the texts of concurrent `predict` calls into batches for `predict_fn`.

    predict_fn: a list of texts -> an array with one row per text, run on the worker thread.
    max_batch: texts per call at most (a single request larger than it goes alone, whole).
    max_wait: seconds the first text of a batch waits for others.
    """

    def __init__(self, predict_fn, *, max_batch=64, max_wait=0.005):
        self.predict_fn, self.max_batch, self.max_wait = predict_fn, max_batch, max_wait
        self.model_calls, self.texts = 0, 0  # so far; GET /health shows them (how well requests batch)
        self.waiting = 0  # texts asked for and not yet answered
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lstmkit-model")

    async def start(self):
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._collect_forever(), name="lstmkit-batcher")

    async def stop(self):
        """After the last request is answered (the server drains them first), end the loop and the thread."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def run(self, fn, *args):
        """fn(*args) on the model's thread: for model calls that are not batched (explain)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def predict(self, texts):
        """predict_fn's rows for these texts, computed in a batch with other requests' texts."""
        texts = list(texts)
        future = asyncio.get_running_loop().create_future()
        self.waiting += len(texts)
        try:
            await self._queue.put((texts, future))
            return await future
        finally:
            self.waiting -= len(texts)

    async def _collect_forever(self):
        loop = asyncio.get_running_loop()
        while True:
            waiting = [await self._queue.get()]
            count, deadline = len(waiting[0][0]), loop.time() + self.max_wait
            while count < self.max_batch and (left := deadline - loop.time()) > 0:
                try:
                    waiting.append(await asyncio.wait_for(self._queue.get(), left))
                except asyncio.TimeoutError:  # the builtin TimeoutError from Python 3.11 on
                    break
                count += len(waiting[-1][0])
            await self._answer(waiting)

    async def _answer(self, waiting):
        """One model call for every waiting request; each future gets its rows, or the error."""
        texts = [t for request_texts, _ in waiting for t in request_texts]
        try:
            rows = await self.run(self.predict_fn, texts)
            self.model_calls, self.texts = self.model_calls + 1, self.texts + len(texts)
        except Exception as e:  # the model failed: every request of the batch hears why
            for _, future in waiting:
                if not future.done():
                    future.set_exception(e)
            return
        start = 0
        for request_texts, future in waiting:
            end = start + len(request_texts)
            if not future.done():  # a client that went away has its future cancelled
                future.set_result(rows[start:end])
            start = end
