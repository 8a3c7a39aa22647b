// The ground-station page: reads /api/status and /api/jobs, starts jobs with POST /api/jobs.
// Every text from the device goes in through textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let timer = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function text(id, value) { $(id).textContent = value; }

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function duration(s) {
  s = Math.round(s);
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min ${s % 60} s`;
  return `${s} s`;
}

function when(unix) { return unix ? new Date(unix * 1000).toLocaleString() : "unknown"; }

function km2(value) { return value == null ? "unknown area" : `${value.toFixed(value < 10 ? 3 : 1)} km²`; }

async function getJson(url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${url}: ${response.status}`);
  return body;
}

function showStatus(s) {
  text("device-id", s.device_id);
  document.title = `floodrt · ${s.device_id}`;
  text("model-name", `${s.model.name} (tile ${s.model.tile_px} px)`);
  text("model-bands", s.model.bands.join(", "));
  text("base-sha", s.model.base_sha256.slice(0, 16));
  const a = s.adapter;
  if (a) {
    text("adapter-version", `v${a.version}`);
    text("adapter-detail", `signed by key ${a.key_id}`);
    text("adapter-installed", when(a.installed_at));
    const h = $("health");
    h.replaceChildren();
    if (a.health) {
      h.append(el("span", { class: "pill ok" }, "passed"), ` largest difference ${a.health.max_difference.toExponential(1)} (tolerance ${a.health.tolerance.toExponential(0)})`);
    } else {
      h.append(el("span", { class: "pill" }, "not checked"), " the adapter carried no health-check values");
    }
  } else {
    text("adapter-version", "none");
    text("adapter-detail", "the base model alone");
    text("adapter-installed", "—");
    text("health", "—");
  }
  text("previous", s.previous_adapter == null ? "no earlier adapter kept" : `v${s.previous_adapter} (to roll back to)`);
  text("uptime", `${duration(s.uptime_s)} (since ${when(s.started_at)})`);
  text("version", s.floodrt_version);
  text("pending", s.jobs.accepting ? `${s.jobs.running} running, ${s.jobs.queued} queued` : "not taking jobs (started without --jobs)");
  const disks = $("disks");
  disks.replaceChildren();
  for (const d of s.disk) {
    const used = d.total_bytes ? 1 - d.free_bytes / d.total_bytes : 0;
    const bar = el("div", { class: "bar" }, el("div"));
    bar.firstChild.style.width = `${(used * 100).toFixed(1)}%`;
    disks.append(el("p", { class: "disk" }, `${d.what} disk: ${bytes(d.free_bytes)} free of ${bytes(d.total_bytes)}`, bar));
  }
}

function jobCard(job) {
  const card = el("div", { class: "job", id: `job-${job.id}`, "data-state": job.state });
  card.append(el("div", { class: "head" },
    el("span", { class: "scene" }, job.scene),
    el("span", { class: `pill ${job.state}` }, job.state),
    el("span", { class: "muted" }, `#${job.id} · ${job.origin === "page" ? "from the page" : "over the air"} · ${when(job.queued_at)}`)));
  if (job.state === "running" || job.state === "queued") {
    const bar = el("div", { class: "bar" }, el("div"));
    bar.firstChild.style.width = `${(job.progress * 100).toFixed(0)}%`;
    card.append(bar, el("div", { class: "muted" },
      job.state === "running" ? `${(job.progress * 100).toFixed(0)} % · ${duration(job.seconds || 0)}` : "waiting for the job before it"));
  }
  if (job.state === "done") {
    card.append(el("div", { class: "figures" },
      el("span", { class: "water-km2" }, `water ${km2(job.water_km2)}`),
      el("small", {}, ` · ${(100 * job.water_fraction).toFixed(1)} % of valid pixels · ${job.adapter == null ? "base model" : "adapter v" + job.adapter} · ${duration(job.seconds)}`)));
    if (job.files.includes("quicklook.png")) {
      card.append(el("img", { class: "quicklook", src: `/api/jobs/${job.id}/quicklook.png`, alt: `quicklook of ${job.scene}` }),
        el("div", { class: "legend" },
          el("span", {}, el("i", { style: "background:#145adc" }), "water"),
          el("span", {}, el("i", { style: "background:#888" }), "land (radar VV)"),
          el("span", {}, el("i", { style: "background:#000" }), "no data")));
    }
  }
  if (job.state === "failed") card.append(el("p", { class: "error" }, job.error || "failed"));
  const labels = { "mask.tif": "mask GeoTIFF", "water.geojson": "GeoJSON", "report.json": "report" };
  const links = job.files.filter((f) => labels[f]).map((f) => el("a", { href: `/api/jobs/${job.id}/${f}`, download: "" }, labels[f]));
  if (links.length) card.append(el("div", { class: "links" }, ...links));
  return card;
}

function showJobs(reply) {
  const select = $("scene");
  const chosen = select.value;
  select.replaceChildren(...reply.scenes.map((s) => el("option", { value: s }, s)));
  if (reply.scenes.includes(chosen)) select.value = chosen;
  $("start").disabled = !reply.accepting || reply.scenes.length === 0;
  if (!reply.accepting) text("message", "This device takes no jobs: start floodrt serve with --jobs DIR.");
  else if (reply.scenes.length === 0) text("message", "No GeoTIFF scenes in the jobs folder yet.");
  const list = $("jobs");
  if (reply.jobs.length) list.replaceChildren(...reply.jobs.map(jobCard));
  return reply.jobs.some((j) => j.state === "running" || j.state === "queued");
}

async function refresh() {
  clearTimeout(timer);
  let busy = false;
  try {
    const [status, jobs] = await Promise.all([getJson("/api/status"), getJson("/api/jobs")]);
    showStatus(status);
    busy = showJobs(jobs);
    text("connection", `updated ${new Date().toLocaleTimeString()}`);
  } catch (e) {
    text("connection", `device not answering (${e.message}); retrying`);
  }
  // Refreshes itself: every 2 s while a job runs, else every 15 s.
  timer = setTimeout(refresh, busy ? 2000 : 15000);
}

$("start-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const scene = $("scene").value;
  if (!scene) return;
  $("start").disabled = true;
  text("message", "");
  try {
    const response = await fetch("/api/jobs", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ scene }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.status);
  } catch (e) {
    text("message", `Not started: ${e.message}`);
  }
  $("start").disabled = false;
  refresh();
});

refresh();
