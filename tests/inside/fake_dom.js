// A minimal stand-in for the browser DOM, enough to run the script of tinydl's HTML graph page in Node:
// reads the page's views, buttons and nodes from a JSON description on stdin, runs the script, clicks, reports.
const fs = require("fs");
const page = JSON.parse(fs.readFileSync(0, "utf8"));
function element(attrs) {
  const listeners = {};
  return {dataset: attrs, style: {}, disabled: false, textContent: "",
          addEventListener: (kind, f) => { listeners[kind] = f; }, click: () => listeners.click(),
          closest: () => attrs.view ? null : views.find(v => v.dataset.view === attrs.inView)};
}
const views = page.views.map(name => element({view: name}));
const buttons = page.views.map(name => element({view: name}));
const nodes = page.nodes.map(([view, id]) => element({inView: view, id: id}));
const details = element({});
const root = {querySelectorAll: selector => selector === ".view" ? views : selector === "g.node" ? nodes : buttons,
              querySelector: () => details};
global.document = {getElementById: id => (id === page.root ? root : null)};
eval(page.script);
const shown = () => views.filter(v => v.style.display === "block").map(v => v.dataset.view);
const report = {start: shown()};
nodes.find(n => n.dataset.inView === report.start[0] && n.dataset.id === page.click).click();
report.details = JSON.parse(details.textContent);
buttons.find(b => b.dataset.view !== report.start[0]).click();
report.after = shown();
console.log(JSON.stringify(report));
