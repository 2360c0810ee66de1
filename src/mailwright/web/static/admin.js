// Mailwright web admin: the little that needs script. Every page works without it
// except the charts (their numbers are in a table beside them).
(function () {
  "use strict";
  var COLORS = {received: "#2563eb", sent: "#16a34a", deferred: "#d97706",
                bounced: "#dc2626", rejected: "#7c3aed", delivered: "#0d9488",
                opened: "#2563eb", clicked: "#16a34a", unsubscribed: "#d97706"};

  var INCREMENTS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000,
                    50000, 100000, 200000, 500000, 1000000];

  function copy(button) {
    var text = button.getAttribute("data-copy");
    var done = function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
      return;
    }
    // Not a secure context (plain http to a remote host): the old way.
    var area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); done(); } finally { area.remove(); }
  }

  function chart(el) {
    if (el.dataset.drawn || typeof uPlot === "undefined") return;
    var source = document.getElementById(el.dataset.source);
    if (!source) return;
    var data = JSON.parse(source.textContent);
    var types = data.types;
    // A series of a day or two is dots, not a line (a campaign's first days).
    var dots = data.x.length < 3;
    var series = [{}].concat(types.map(function (t) {
      return {label: t, stroke: COLORS[t] || "#555", width: 2, points: {show: dots}};
    }));
    var rows = [data.x].concat(types.map(function (t) { return data.series[t]; }));
    el.dataset.drawn = "1";
    // One bucket alone (a campaign's first day) would be drawn years wide: a step
    // either side of it instead.
    var step = Number(el.dataset.step) || 86400;
    var one = data.x.length === 1 ? data.x[0] : null;
    var range = function (u, min, max) {
      return one === null ? [min, max] : [one - step, one + step];
    };
    var width = Math.max(280, el.clientWidth || 600);
    var plot = new uPlot({width: width, height: 220, series: series,
                          scales: {x: {time: true, range: range}},
                          // Messages are counted whole: no 0.5 ticks.
                          axes: [{}, {label: el.dataset.unit || "messages",
                                      incrs: INCREMENTS}]},
                         rows, el);
    window.addEventListener("resize", function () {
      plot.setSize({width: Math.max(280, el.clientWidth), height: 220});
    });
  }

  function enhance(root) {
    root.querySelectorAll(".copy-button").forEach(function (b) {
      if (b.dataset.ready) return;
      b.dataset.ready = "1";
      b.hidden = false;
      b.addEventListener("click", function () { copy(b); });
    });
    root.querySelectorAll(".chart").forEach(chart);
  }

  if (window.htmx) {
    htmx.onLoad(enhance);   // the first page, and whatever htmx swaps in later
  } else {
    document.addEventListener("DOMContentLoaded", function () { enhance(document); });
  }
})();
