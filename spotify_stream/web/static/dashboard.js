// The live dashboard: every chart of /dashboard/charts, drawn from /dashboard/data/<id>
// with Chart.js. Each chart also shows its numbers in a table (the accessible form,
// and the one the tests read); series differ by point shape and dash, not colour alone.
"use strict";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const SHAPES = ["circle", "rect", "triangle", "rectRot", "star", "crossRot", "cross",
  "rectRounded", "line", "dash"];
const DASHES = [[], [6, 3], [2, 2], [8, 3, 2, 3]];
const drawn = {}; // chart id -> Chart.js instance
const rates = []; // the pipeline panel's samples: [time, records in per s, messages out per s]
const RATE_SAMPLES = 120;

async function getJSON(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmt(value) {
  if (typeof value === "number") {
    return Number.isInteger(value) ? value.toLocaleString("en") : value.toLocaleString("en", { maximumFractionDigits: 4 });
  }
  return value === null || value === undefined ? "" : String(value);
}

function numbersTable(caption, header, rows) {
  const table = el("table", { class: "numbers" });
  table.append(el("caption", {}, caption));
  const head = el("tr");
  for (const h of header) head.append(el("th", { scope: "col" }, h));
  const thead = el("thead");
  thead.append(head);
  table.append(thead);
  const body = el("tbody");
  for (const row of rows) {
    const tr = el("tr");
    for (const value of row) tr.append(el("td", typeof value === "number" ? { class: "num" } : {}, fmt(value)));
    body.append(tr);
  }
  table.append(body);
  return table;
}

function section(chart) {
  const s = el("section", { id: chart.id, "data-kind": chart.kind, "aria-labelledby": `${chart.id}-title` });
  s.append(el("h2", { id: `${chart.id}-title` }, chart.title));
  s.append(el("p", { class: "about" }, chart.description));
  if (chart.kind !== "heatmap") {
    const box = el("div", { class: "canvas" });
    box.append(el("canvas", { role: "img", "aria-label": `${chart.title}: ${chart.description}` }));
    s.append(box);
  }
  s.append(el("div", { class: "body" }));
  s.append(el("p", { class: "meta" }, "loading…"));
  return s;
}

function axes(chart, horizontal) {
  const x = { title: { display: true, text: horizontal ? chart.y_label : chart.x_label } };
  const y = { title: { display: true, text: horizontal ? chart.x_label : chart.y_label } };
  // offset: a single day sits in the middle of its axis, not on the edge
  return horizontal ? { x: { ...x, beginAtZero: true }, y } : { x: { ...x, offset: true }, y };
}

function draw(chart, config) {
  const canvas = document.querySelector(`#${chart.id} canvas`);
  if (drawn[chart.id]) {
    drawn[chart.id].data = config.data;
    drawn[chart.id].update("none");
    return;
  }
  config.options = {
    responsive: true, maintainAspectRatio: false, animation: false,
    plugins: { title: { display: false }, legend: { display: config.legend !== false } },
    ...config.options,
  };
  drawn[chart.id] = new Chart(canvas, config);
}

function barChart(chart, rows) {
  draw(chart, {
    type: "bar", legend: false,
    data: {
      labels: rows.map((r) => r[chart.x]),
      datasets: [{ label: chart.y_label, data: rows.map((r) => r[chart.y]), backgroundColor: PALETTE[0] }],
    },
    options: { indexAxis: "y", scales: axes(chart, true) },
  });
  return numbersTable(`${chart.title}: the numbers`, [chart.x_label, chart.y_label],
    rows.map((r) => [r[chart.x], r[chart.y]]));
}

function lineChart(chart, rows) {
  const days = [...new Set(rows.map((r) => r[chart.x]))].sort();
  const names = [...new Set(rows.map((r) => r[chart.series]))].sort();
  draw(chart, {
    type: "line",
    data: {
      labels: days,
      datasets: names.map((name, i) => ({
        label: name,
        data: days.map((d) => (rows.find((r) => r[chart.x] === d && r[chart.series] === name) || {})[chart.y] ?? null),
        borderColor: PALETTE[i % PALETTE.length], backgroundColor: PALETTE[i % PALETTE.length],
        pointStyle: SHAPES[i % SHAPES.length], pointRadius: 5, borderDash: DASHES[i % DASHES.length],
        spanGaps: false,
      })),
    },
    options: { scales: axes(chart, false) },
  });
  return numbersTable(`${chart.title}: the numbers`, [chart.x_label, chart.series, chart.y_label],
    rows.map((r) => [r[chart.x], r[chart.series], r[chart.y]]));
}

function scatterChart(chart, clusters) {
  const ids = [...new Set(clusters.points.map((p) => p.cluster_id))].sort((a, b) => a - b);
  const [e1, e2] = clusters.explained;
  draw(chart, {
    type: "scatter",
    data: {
      datasets: ids.map((id) => ({
        label: `cluster ${id}`,
        data: clusters.points.filter((p) => p.cluster_id === id).map((p) => ({ x: p.pc1, y: p.pc2 })),
        // outline shapes (crosses, stars) are drawn with the border colour
        backgroundColor: PALETTE[id % PALETTE.length], borderColor: PALETTE[id % PALETTE.length],
        pointStyle: SHAPES[id % SHAPES.length], pointRadius: 3,
      })),
    },
    options: {
      scales: {
        x: { title: { display: true, text: `${chart.x_label} (${e1}% of variance)` } },
        y: { title: { display: true, text: `${chart.y_label} (${e2}% of variance)` } },
      },
    },
  });
  const shown = ids.map((id) => [id, clusters.points.filter((p) => p.cluster_id === id).length]);
  return numbersTable(`${chart.title}: tracks shown per cluster (model version ${clusters.version}, ${clusters.tracks.toLocaleString("en")} tracks)`,
    ["cluster", "tracks shown"], shown);
}

function heatTable(chart, clusters) {
  const table = numbersTable(`${chart.title}, model version ${clusters.version}: standard deviations from the mean of all tracks`,
    ["cluster", "tracks", "top genres", ...clusters.features],
    clusters.profiles.map((p) => [p.cluster_id, p.size, p.top_genres.join(", "), ...p.z]));
  table.classList.add("heat");
  for (const td of table.querySelectorAll("tbody td.num")) {
    const column = td.cellIndex;
    if (column < 3) continue;
    const v = Number(td.textContent);
    const a = Math.min(1, Math.abs(v) / 2);
    td.style.background = v >= 0 ? `rgba(214, 39, 40, ${a * 0.6})` : `rgba(31, 119, 180, ${a * 0.6})`;
    td.textContent = (v >= 0 ? "+" : "") + v.toFixed(2);
  }
  return table;
}

function ratesChart(chart, data) {
  const sum = (key) => data.topics.reduce((total, t) => total + (t[key] || 0), 0);
  rates.push([new Date().toLocaleTimeString("en-GB"), sum("rate_in"), sum("rate_out")]);
  if (rates.length > RATE_SAMPLES) rates.shift();
  draw(chart, {
    type: "line",
    data: {
      labels: rates.map((r) => r[0]),
      datasets: [["records in per s", 1], ["messages out per s", 2]].map(([label, column], i) => ({
        label, data: rates.map((r) => r[column]),
        borderColor: PALETTE[i], backgroundColor: PALETTE[i], pointStyle: SHAPES[i],
        pointRadius: 2, borderDash: DASHES[i],
      })),
    },
    options: { scales: { x: { title: { display: true, text: "time" } },
      y: { beginAtZero: true, title: { display: true, text: "per second, all topics" } } } },
  });
}

function pipelinePanel(chart, data) {
  ratesChart(chart, data);
  const box = el("div");
  box.append(numbersTable("Records per second and consumer lag, per topic", ["topic", "in per s", "out per s", "lag (messages)"],
    data.topics.map((t) => [t.topic, t.rate_in, t.rate_out, t.lag ?? "—"])));
  const dead = Object.entries(data.dead_letters);
  box.append(numbersTable("Dead letters this worker sent, by reason", ["reason", "records"], dead.length ? dead : [["none", 0]]));
  box.append(numbersTable("Lake", ["dataset", "files", "rows", "last flush (UTC)"],
    data.lake.map((d) => [d.dataset, d.files, d.rows, d.last_flush_at ? new Date(d.last_flush_at * 1000).toISOString().slice(0, 19) : "—"])));
  return box;
}

async function refresh(chart) {
  const s = document.getElementById(chart.id);
  const body = s.querySelector(".body");
  const meta = s.querySelector(".meta");
  try {
    const data = await getJSON(`/dashboard/data/${chart.id}`);
    let content;
    let count;
    if (chart.kind === "table") {
      content = pipelinePanel(chart, data);
      count = data.topics.length;
    } else if (chart.kind === "scatter" || chart.kind === "heatmap") {
      if (!data.clusters) throw new Error("no cluster model in the lake yet");
      content = chart.kind === "scatter" ? scatterChart(chart, data.clusters) : heatTable(chart, data.clusters);
      count = data.clusters.profiles.length;
    } else {
      const rows = data.rows;
      content = chart.kind === "line" ? lineChart(chart, rows) : barChart(chart, rows);
      count = rows.length;
      if (chart.id === "rolling_artists") {
        meta.dataset.window = `${data.window_start || ""}/${data.window_end || ""}`;
      }
    }
    const details = el("details", chart.kind === "table" || chart.kind === "heatmap" ? { open: "" } : {});
    details.append(el("summary", {}, chart.kind === "table" || chart.kind === "heatmap" ? "the numbers" : "show the numbers"));
    details.append(content);
    body.replaceChildren(details);
    s.dataset.rows = String(count);
    meta.classList.remove("error");
    const window = chart.id === "rolling_artists" && data.window_end ? `, window ending ${data.window_end}` : "";
    meta.textContent = data.note ? data.note
      : `${count} ${count === 1 ? "row" : "rows"}${window}; updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    s.dataset.rows = "0";
    meta.classList.add("error");
    meta.textContent = String(error.message || error);
  }
}

async function main() {
  const status = document.getElementById("status");
  try {
    const spec = await getJSON("/dashboard/charts");
    const main = document.getElementById("charts");
    for (const chart of spec.charts) main.append(section(chart));
    await Promise.all(spec.charts.map(refresh));
    for (const chart of spec.charts) {
      const seconds = chart.live ? spec.live_refresh_seconds : spec.refresh_seconds;
      setInterval(() => refresh(chart), seconds * 1000);
    }
    status.textContent = `Live charts every ${spec.live_refresh_seconds} s, lake charts every ${spec.refresh_seconds} s.`;
    document.body.dataset.ready = "true";
  } catch (error) {
    status.textContent = `The dashboard could not load: ${error.message || error}`;
  }
}

main();
