// A minimal stand-in for the browser DOM, enough to run the script of tinydl's HTML graph page in Node:
// reads the page's views, buttons, nodes and module boxes from a JSON description on stdin, runs the script,
// clicks a module box, a node and the other view's button, and prints what changed.
const fs = require("fs");
const page = JSON.parse(fs.readFileSync(0, "utf8"));
const svgs = {};
function element(attrs, view) {
  const listeners = {};
  return {dataset: attrs, style: {}, disabled: false, textContent: "",
          addEventListener: (kind, f) => { listeners[kind] = f; }, click: () => listeners.click(),
          closest: selector => (selector === "svg" ? svgs[view] : views.find(v => v.dataset.view === view))};
}
const views = page.views.map(name => element({view: name}, name));
page.views.forEach(name => {
  const classes = new Set();
  svgs[name] = {classes, classList: {toggle: c => (classes.has(c) ? classes.delete(c) : classes.add(c))}};
});
const buttons = page.views.map(name => element({view: name}, name));
const nodes = page.nodes.map(([view, id]) => element({id: id}, view));
const boxes = page.clusters.map(([view, k]) => element({cluster: k}, view));
const details = element({});
const lists = {".view": views, "g.node": nodes, "g.cluster": boxes, "button[data-view]": buttons};
const root = {querySelectorAll: selector => lists[selector], querySelector: () => details};
global.document = {getElementById: id => (id === page.root ? root : null)};
eval(page.script);
const shown = () => views.filter(v => v.style.display === "block").map(v => v.dataset.view);
const report = {start: shown()};
if (boxes.length) {
  boxes[0].click();
  report.collapsed = [...svgs[page.clusters[0][0]].classes];
  boxes[0].click();
  report.expanded = [...svgs[page.clusters[0][0]].classes];
}
nodes.find(n => n.closest(".view").dataset.view === report.start[0] && n.dataset.id === page.click).click();
report.details = JSON.parse(details.textContent);
buttons.find(b => b.dataset.view !== report.start[0]).click();
report.after = shown();
console.log(JSON.stringify(report));
