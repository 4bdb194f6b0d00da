"""What every logger writes beside its histograms, with TensorBoard's protos alone (no training
framework): the model's layers as a text event the analyzer and TensorBoard read, new event files'
names, and the one thread beside training that does a logger's work in order."""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from tensorboard.compat.proto import event_pb2, summary_pb2, types_pb2

from .records import RecordFile

# The model's config as Keras's TensorBoard callback writes it (tag "keras", the graph plugin's
# metadata, a string tensor of model.to_json()), so that TensorBoard's graph view and gradaudit's
# analyzer read it; a model without such a config gets its layer list in the same shape instead.
KERAS_MODEL_TAG, KERAS_MODEL_PLUGIN = "keras", "graph_keras_model"
LAYER_LIST_TAG, LAYER_LIST_PLUGIN = "gradaudit/model_layers", "gradaudit_model"


def text_event(tag: str, plugin: str, text: str) -> event_pb2.Event:
    """One string tensor under `tag`, marked as `plugin`'s, at step 0."""
    summary = summary_pb2.Summary()
    value = summary.value.add(tag=tag)
    value.metadata.plugin_data.plugin_name = plugin
    value.metadata.plugin_data.content = b"1"
    value.tensor.dtype = types_pb2.DT_STRING
    value.tensor.string_val.append(text.encode("utf-8"))
    return event_pb2.Event(wall_time=time.time(), step=0, summary=summary)


def event_file_name() -> str:
    """A new file's name, as TensorFlow's writers name theirs: time, host, process and a counter, so
    no two writers share a file and a run's files sort in the order they were written."""
    return f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.{next(_FILES)}.v2"


_FILES = itertools.count()


class EventFile:
    """A new event file in `folder`, the file version first, each event framed and written where
    add_event is called (a logger's own thread), flushed every FLUSH_SECONDS and at close.

    TensorBoard's EventFileWriter would do the same on a thread of its own, but it opens its file
    through tf.io.gfile, which imports TensorFlow where it is installed: 4.5 s and hundreds of MB in
    a PyTorch training that never asked for it."""

    FLUSH_SECONDS = 10.0

    def __init__(self, folder: str, suffix: str = ""):
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, event_file_name() + suffix)
        self._records = RecordFile(self.path)
        self._flushed = time.monotonic()
        self.add_event(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def add_event(self, event: event_pb2.Event) -> None:
        self._records.write(event.SerializeToString())
        if time.monotonic() - self._flushed >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self._records.flush()
        self._flushed = time.monotonic()

    def close(self) -> None:
        self._records.close()


class OrderedThread:
    """One thread that runs what is submitted to it in order.

    At most two tasks wait, each holding what it was handed (a snapshot of the weights, copies of
    gradients): when they take longer than the training between them, training slows down rather
    than holding them without bound. A task's error is raised in the training thread at the next
    poll(), submit() or close()."""

    _MAX_PENDING = 2

    def __init__(self, name: str):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: deque[Future] = deque()

    def submit(self, fn, *args) -> None:
        self.poll()
        while len(self._pending) >= self._MAX_PENDING:
            self._pending.popleft().result()
        self._pending.append(self._executor.submit(fn, *args))

    def poll(self) -> None:
        """Collect the tasks that have run, raising the error of one that failed."""
        while self._pending and self._pending[0].done():
            self._pending.popleft().result()

    def close(self) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._executor.shutdown(wait=True, cancel_futures=True)
