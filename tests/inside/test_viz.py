"""Graph drawings: golden DOT/Mermaid, the SVG parses, the HTML is self-contained, the seed CNN folds into its four
layers, gradients show as "not computed" until backward, backward and double-backward graphs, and the errors."""
import json
import pathlib
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import tinydl
import tinydl.functional as F
from tinydl import viz

from .cnn import cnn_and_batch

GOLDEN = pathlib.Path(__file__).parent / "golden"


def small_graph():
    w = tinydl.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    b = tinydl.tensor(np.zeros(2, np.float32), requires_grad=True)
    x = tinydl.tensor(np.ones((4, 3), np.float32))
    return F.relu(x @ w.T + b).sum(), w, b


def test_dot_and_mermaid_match_the_golden_files():
    y, w, b = small_graph()
    g = viz.graph(y, params={"w": w, "b": b})
    assert g.dot() == (GOLDEN / "small.dot").read_text()
    assert g.mermaid() == (GOLDEN / "small.mmd").read_text()


def test_summary_table_matches_the_golden_file():
    from tinydl import nn
    tinydl.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert str(tinydl.summary(model, tinydl.ones(5, 3))) + "\n" == (GOLDEN / "summary.txt").read_text()


def test_cnn_graph_names_parameters_from_the_modules_and_folds_into_four_modules():
    model, images, labels = cnn_and_batch(batch=2)
    loss = F.cross_entropy(model(images), labels)
    ops = viz.graph(loss)
    titles = [n.title for n in ops.nodes]
    for name, _ in model.named_parameters():
        assert name in titles
    assert titles.count("conv2d") == 2 and titles.count("linear") == 2
    folded = viz.graph(loss, group="module")
    modules = [n.title for n in folded.nodes if n.kind == "module"]
    assert modules == ["conv1: Conv2d", "conv2: Conv2d", "fc1: Linear", "fc2: Linear"]
    assert not any(n.kind == "leaf" for n in folded.nodes)  # parameters went inside their module
    boxes = ops.clusters()
    assert list(boxes) == ["conv1: Conv2d", "pool: MaxPool2d", "conv2: Conv2d", "pool: MaxPool2d (call 2)",
                           "fc1: Linear", "fc2: Linear"]
    assert sorted(ops.nodes[int(i[1:])].title for i in boxes["fc1: Linear"]) == ["fc1.bias", "fc1.weight", "linear"]
    assert 'subgraph cluster_0 { label="conv1: Conv2d"' in ops.dot()
    assert '  subgraph c5 ["fc2: Linear"]' in ops.mermaid()
    backward_boxes = viz.graph(loss, backward=True).clusters()
    assert sorted(backward_boxes) == sorted(boxes)  # the same calls, numbered in forward order
    by_params = viz.graph(loss, params={f"net.{k}": v for k, v in model.named_parameters()})
    assert "net.fc1.weight" in [n.title for n in by_params.nodes]


def test_gradients_show_not_computed_before_backward_and_statistics_after():
    y, w, b = small_graph()
    before = viz.graph(y, params={"w": w}).json()
    assert "grad: not computed" in before and '"grad": 0' not in before
    y.backward(retain_graph=True)
    after = json.loads(viz.graph(y, params={"w": w}).json())
    grad = next(n for n in after["nodes"] if n["title"] == "w")["details"]["grad"]
    norm = float(re.search(r"norm ([0-9.e+-]+)", grad).group(1))
    np.testing.assert_allclose(norm, np.linalg.norm(w.grad.numpy()), rtol=1e-3)


def test_backward_graph_runs_from_the_output_gradient_to_the_leaves():
    y, w, b = small_graph()
    g = viz.graph(y, backward=True, params={"w": w, "b": b})
    titles = {n.id: n.title for n in g.nodes}
    edges = {(titles[e.source], titles[e.target]) for e in g.edges}
    assert ("grad of output", "sum backward") in edges
    assert ("add backward", "matmul backward") in edges and ("add backward", "b.grad +=") in edges
    assert ("permute backward", "w.grad +=") in edges
    assert "input" not in titles.values()  # no gradient flows to the constant


def test_the_graph_of_a_gradient_after_create_graph_can_be_drawn():
    x = tinydl.tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    g = viz.graph(x.grad)
    ops = [n.title for n in g.nodes if n.kind == "op"]
    assert "pow" in ops and "mul" in ops  # 3 x^2, built by pow's backward


def test_saved_tensors_are_drawn_when_asked():
    x = tinydl.tensor(np.array([[1.0, -2.0]]), requires_grad=True)
    g = viz.graph(F.max(x, dim=1)[0], saved=True)
    saved = [n for n in g.nodes if n.kind == "saved"]
    assert {n.title for n in saved} >= {"saved indices", "saved weights"}
    assert any(e.style == "dashed" for e in g.edges)


def test_svg_parses_and_html_references_nothing_outside(tmp_path):
    model, images, labels = cnn_and_batch(batch=2)
    g = viz.graph(F.cross_entropy(model(images), labels))
    root = ET.fromstring(g.svg())
    assert root.tag.endswith("svg") and len(root.findall(".//{http://www.w3.org/2000/svg}rect")) == len(g.nodes)
    page = g.html()
    assert not re.search(r"https?:", page)
    assert "collapse all modules" in page and "<script>" in page and "conv1.weight" in page
    assert page.count('<g class="cluster"') == 6 and ".collapsed-0 [data-cluster='0'].node" in page
    assert g._repr_svg_() == g.svg() and "<script>" in g._repr_html_()
    for suffix in (".dot", ".mmd", ".json", ".svg", ".html"):
        g.save(tmp_path / f"graph{suffix}")
    assert json.loads((tmp_path / "graph.json").read_text())["nodes"]
    ET.parse(tmp_path / "graph.svg")


def test_a_2000_node_graph_lays_out_and_renders_in_under_two_seconds():
    a = tinydl.randn(4, requires_grad=True)
    h = a
    for _ in range(500):
        h = F.tanh(h * a + 1.0)
    g = viz.graph(h.sum())
    assert len(g.nodes) >= 2000
    start = time.perf_counter()
    svg = g.svg()
    assert time.perf_counter() - start < 2.0
    ET.fromstring(svg)


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match=r"tensor of shape \(3,\) float32 has no graph"):
        viz.graph(tinydl.ones(3))
    y, w, b = small_graph()
    y.backward()
    with pytest.raises(RuntimeError, match="the graph was freed by backward"):
        viz.graph(y)
    z = (w * 2).sum()
    with pytest.raises(ValueError, match="cannot tell the format of .*graph.png"):
        viz.graph(z).save(tmp_path / "graph.png")
    with pytest.raises(OSError, match="cannot write .*missing"):
        viz.graph(z).save(tmp_path / "missing" / "graph.svg")
    with pytest.raises(ValueError, match="group must be 'op' or 'module'"):
        viz.graph(z, group="layer")


def test_render_needs_no_graphviz(monkeypatch):
    y, w, b = small_graph()
    g = viz.graph(y)
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert g.render() == g.svg()


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to run the page's script")
@pytest.mark.parametrize("group", ["op", "module"])
def test_the_page_script_switches_views_and_shows_the_clicked_nodes_details(group):
    model, images, labels = cnn_and_batch(batch=2)
    g = viz.graph(F.cross_entropy(model(images), labels), group=group)
    page = g.html()
    script = re.search(r"<script>(.*)</script>", page, re.S).group(1)
    root = re.search(r'class="tinydl-graph" id="([^"]+)"', page).group(1)
    views = re.findall(r'<div class="view" data-view="(\w+)">', page)
    nodes, clusters = [], []
    for view, svg in re.findall(r'<div class="view" data-view="(\w+)">(.*?)</svg>', page, re.S):
        nodes += [[view, node_id] for node_id in re.findall(r'<g class="node" data-id="(\w+)"', svg)]
        clusters += [[view, k] for k in re.findall(r'<g class="cluster" data-cluster="(\d+)"', svg)]
    first = "modules" if group == "module" else "ops"
    clicked_node = next(n for n in g.nodes if n.title.startswith("fc1"))
    clicked = clicked_node.id
    description = json.dumps({"script": script, "root": root, "views": views, "nodes": nodes, "clusters": clusters,
                              "click": clicked})
    result = subprocess.run(["node", str(pathlib.Path(__file__).parent / "fake_dom.js")], input=description,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["start"] == [first] and report["after"] == [{"ops": "modules", "modules": "ops"}[first]]
    assert report["collapsed"] == ["collapsed-0"] and report["expanded"] == []  # the op view's module boxes
    expected = {"title": clicked_node.title, **{k: v for k, v in clicked_node.details.items() if k[0] != "_"}}
    assert report["details"] == json.loads(json.dumps(expected))
    assert "grad: not computed" in str(expected) or "(2, 512) float32" in str(expected)
