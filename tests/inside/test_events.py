"""The one instrumentation point (tinydl/events.py): what subscribers see, and that nothing is paid when nobody
subscribes."""
import os
import threading

import numpy as np

import tinydl
import tinydl.functional as F
from tinydl import events, nn

THIS_FILE = os.path.abspath(__file__)


class Recorder:
    def __init__(self, wants_site=False):
        self.wants_site = wants_site
        self.seen = []

    def begin(self, event):
        pass

    def end(self, event):
        self.seen.append((event.op, event.phase, event.op_id, event.module_path, event.site,
                          event.shapes(event.inputs), event.shapes(event.outputs),
                          None if event.parent is None else event.parent.op, event.end >= event.start))


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.body(x)).sum()


def test_forward_and_backward_events_carry_op_phase_module_shapes_and_shared_ids():
    tinydl.manual_seed(0)
    model = Tiny()
    recorder = Recorder()
    with events.subscribed(recorder):
        loss = model(tinydl.randn(5, 3))
        loss.backward()
    forward = [s for s in recorder.seen if s[1] == "forward"]
    assert [(s[0], s[3]) for s in forward] == [("linear", "body.0"), ("relu", "body.1"), ("linear", "head"),
                                               ("sum", "")]
    assert forward[0][5] == [(5, 3), (4, 3), (4,)] and forward[0][6] == [(5, 4)]
    steps = [s for s in recorder.seen if s[1] == "backward" and s[7] is None]
    assert [s[0] for s in steps] == ["sum", "linear", "relu", "linear"]  # engine order: consumers first
    ids = {s[0] + s[3]: s[2] for s in forward}
    assert [s[2] for s in steps] == [ids["sum"], ids["linearhead"], ids["relubody.1"], ids["linearbody.0"]]
    assert [s[3] for s in steps] == ["", "head", "body.1", "body.0"]
    nested = [s for s in recorder.seen if s[7] is not None]  # ops run by backward formulas
    assert nested and all(s[1] == "backward" for s in nested)
    assert all(s[8] for s in recorder.seen)
    assert all(s[4] is None for s in recorder.seen)  # nobody asked for file:line
    assert not events.observed


def test_recorded_nodes_remember_their_module_path_without_subscribers():
    model = Tiny()
    hidden = model.body(tinydl.randn(2, 3, requires_grad=True))  # the outermost call names the paths
    assert hidden._creator.module_path == "1"
    assert hidden._creator.inputs[0]._creator.module_path == "0"
    out = model(tinydl.randn(2, 3, requires_grad=True))
    assert out._creator.inputs[0]._creator.module_path == "head"
    assert not events.observed
    plain = tinydl.randn(2, requires_grad=True) * 2
    assert plain._creator.module_path is None


def test_site_is_the_users_line_only_when_asked():
    x = tinydl.randn(3, requires_grad=True)
    recorder = Recorder(wants_site=True)
    with events.subscribed(recorder):
        line = __import__("inspect").currentframe().f_lineno + 1
        y = (x * 2).sum()
        y.backward()
    sites = {s[4] for s in recorder.seen}
    assert sites == {f"{THIS_FILE}:{line}"}  # backward steps report the line that created the node


def test_subscriptions_are_per_thread():
    recorder = Recorder()
    x = tinydl.randn(3, requires_grad=True)
    with events.subscribed(recorder):
        worker = threading.Thread(target=lambda: F.exp(x))
        worker.start()
        worker.join()
        F.tanh(x)
    assert [s[0] for s in recorder.seen] == ["tanh"]


def test_saved_arrays_lists_inputs_and_saved_state_once():
    x = tinydl.randn(2, 3, requires_grad=True)
    y = F.max(x, dim=1)[0]
    saved = list(events.iter_saved_arrays(y._creator))
    assert any(a is x.data for a in saved)
    assert len({id(a) for a in saved}) == len(saved)
    assert sum(a.nbytes for a in saved) >= x.data.nbytes + np.zeros((2, 1), np.int64).nbytes
