// The live sale page: one EventSource on /dashboard/stream?sale=ID, each
// event a JSON object {sale, instance} rendered into the DOM. No framework,
// no build step, nothing loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const rates = []; // orders/s of the last minute, for the chart
let source = null;

function fmtMs(v) {
  if (v === null || v === undefined) return "–";
  return v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : Math.round(v).toString();
}

function fmtPair(q) {
  if (!q || q.p50_ms === null || q.p50_ms === undefined) return "–";
  return fmtMs(q.p50_ms) + " / " + fmtMs(q.p99_ms) + " ms";
}

function fmtRate(v) {
  return v === undefined ? "–" : v < 10 ? v.toFixed(1) : Math.round(v).toString();
}

function setStatus(text, error) {
  $("status").textContent = text;
  $("status").classList.toggle("error", !!error);
}

// soldOut says whether the sale is sold out: the API's own "sold_out" when
// it sends one (units gone or only held), else no units left while active.
function soldOut(sale) {
  if (sale.sold_out) return sale.sold_out;
  return sale.state === "active" && sale.remaining === 0 ? "gone" : "";
}

function renderSale(sale) {
  $("sale-panel").hidden = false;
  $("title").textContent = sale.title;
  $("sku").textContent = sale.sku;
  $("price").textContent = (sale.price_cents / 100).toFixed(2) + " " + sale.currency;
  $("limit").textContent = sale.per_user_limit;
  $("remaining").textContent = sale.remaining;
  $("stock").textContent = sale.stock;
  $("ends").textContent = new Date(sale.ends_at).toLocaleString();
  $("held-row").hidden = sale.held === undefined;
  if (sale.held !== undefined) $("held").textContent = sale.held;
  $("bar-fill").style.width = (sale.stock > 0 ? (100 * sale.remaining) / sale.stock : 0) + "%";
  const out = soldOut(sale);
  const badge = $("state");
  badge.className = "badge " + (out ? "soldout" : sale.state);
  badge.textContent = out === "held" ? "Sold out (units held)" : out ? "Sold out" : sale.state;
  $("sale-panel").classList.toggle("soldout", !!out);
  document.body.dataset.soldOut = out ? "true" : "false";
}

function renderInstance(f) {
  $("instance-panel").hidden = false;
  $("window").textContent = Math.round(f.window_seconds);
  $("orders").textContent = fmtRate(f.orders_per_s);
  $("soldout-rate").textContent = fmtRate(f.sold_out_per_s);
  $("ratelimited-rate").textContent = fmtRate(f.rate_limited_per_s);
  $("buy-http-card").hidden = !f.buy_http;
  if (f.buy_http) $("buy-http").textContent = fmtPair(f.buy_http);
  $("reserve").textContent = fmtPair(f.reserve);
  $("commit").textContent = fmtPair(f.commit);
  $("relay").textContent = fmtPair(f.relay_lag);
  const lags = Object.entries(f.consumer_lag || {});
  $("consumers").textContent = lags.length ? lags.map(([n, v]) => n + " " + v).join(", ") : "none here";
  $("updated").textContent = new Date(f.at).toLocaleTimeString();
  rates.push(f.orders_per_s);
  if (rates.length > 60) rates.shift();
  drawChart();
}

function drawChart() {
  const c = $("chart");
  const ctx = c.getContext("2d");
  const w = c.width, h = c.height, top = Math.max(1, ...rates);
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#6b7385";
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillText("orders/s, last minute (max " + fmtRate(top) + ")", 4, 14);
  ctx.strokeStyle = "#2f6fed";
  ctx.lineWidth = 2;
  ctx.beginPath();
  rates.forEach((v, i) => {
    const x = (i / 59) * (w - 8) + 4, y = h - 4 - (v / top) * (h - 24);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

// explain asks the API why the stream was refused: its problem detail.
async function explain(id) {
  try {
    const r = await fetch("/v1/sales/" + encodeURIComponent(id));
    if (r.ok) return "Stream interrupted; reconnecting…";
    const p = await r.json();
    return p.detail || p.title || "HTTP " + r.status;
  } catch (e) {
    return "The service is unreachable; reconnecting…";
  }
}

function watch(id) {
  if (source) source.close();
  rates.length = 0;
  if (!id) return;
  setStatus("Connecting…");
  source = new EventSource("/dashboard/stream?sale=" + encodeURIComponent(id));
  source.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.error) {
      setStatus(msg.error, true);
    } else {
      setStatus("Live: sale " + id);
    }
    if (msg.sale) renderSale(msg.sale);
    if (msg.instance) renderInstance(msg.instance);
  };
  source.onerror = async () => {
    const closed = source.readyState === EventSource.CLOSED;
    setStatus(await explain(id), true);
    if (closed) source.close();
  };
}

document.addEventListener("DOMContentLoaded", () => {
  const id = new URLSearchParams(location.search).get("sale") || "";
  $("sale").value = id;
  $("pick").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const next = $("sale").value.trim();
    window.history.replaceState(null, "", "/dashboard?sale=" + encodeURIComponent(next));
    watch(next);
  });
  watch(id);
});
