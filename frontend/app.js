// Virtual try-on page: no framework, no build step. Talks to the REST API under <meta name="tryon-api">.
"use strict";

(() => {
  const API = (document.querySelector('meta[name="tryon-api"]')?.content || "/api").replace(/\/$/, "");
  const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
  const STAGE_LABELS = {
    queued: "Waiting in the queue",
    loading: "Reading the photos",
    segmentation: "Finding the clothes",
    pose: "Estimating the pose",
    warp: "Fitting the garment",
    inpaint: "Painting the garment on",
    blend: "Blending the result",
    saving: "Saving the result",
  };
  const POLL_MS = 1000;

  const $ = (id) => document.getElementById(id);
  const el = {
    form: $("tryon-form"),
    submit: $("submit"),
    example: $("example"),
    category: $("category"),
    apiKey: $("api-key"),
    progressSection: $("progress-section"),
    progress: $("progress"),
    progressLabel: $("progress-label"),
    cancel: $("cancel"),
    live: $("live"),
    error: $("error"),
    errorTitle: $("error-title"),
    errorDetail: $("error-detail"),
    errorList: $("error-list"),
    resultSection: $("result-section"),
    resultHeading: $("result-heading"),
    original: $("original-image"),
    before: $("before-image"),
    result: $("result-image"),
    compareFrame: $("compare-frame"),
    compareRange: $("compare-range"),
    timing: $("result-timing"),
    download: $("download"),
    another: $("another"),
    del: $("delete"),
    expiry: $("expiry"),
  };

  // The chosen photos live here (from the picker, a drop, or the example), not only in the <input>s, so a
  // second garment can be tried without choosing the person again.
  const state = {
    files: { person: null, garment: null },
    urls: { person: null, garment: null },
    exampleGarment: false,
    job: null, // {id, statusUrl, eventsUrl}
    personJob: null, // {file, id}: the last job made with the chosen person photo (for person_from)
    source: null, // EventSource
    pollTimer: null,
    lastStageText: "",
    exampleCategories: ["upper_body"], // replaced by GET /api/limits
  };

  // ---------- errors ----------

  class ApiError extends Error {
    constructor(problem) {
      super(problem.detail || problem.title || "Request failed");
      this.problem = problem;
    }
  }

  function retryText(seconds) {
    if (!seconds) return "";
    const s = Number(seconds);
    return Number.isFinite(s) ? ` Try again in ${s} second${s === 1 ? "" : "s"}.` : "";
  }

  async function problemFrom(response) {
    let body = null;
    const type = response.headers.get("content-type") || "";
    try {
      body = type.includes("json") ? await response.json() : { detail: (await response.text()).slice(0, 300) };
    } catch {
      body = null;
    }
    const problem = {
      status: response.status,
      title: body?.title || response.statusText || `HTTP ${response.status}`,
      detail: body?.detail || "",
      errors: Array.isArray(body?.errors) ? body.errors : [],
      retryAfter: response.headers.get("retry-after"),
    };
    problem.detail += retryText(problem.retryAfter);
    return problem;
  }

  function showError(problem) {
    el.errorTitle.textContent = problem.title || "Something went wrong";
    el.errorDetail.textContent = problem.detail || "";
    // One field error repeats the detail; several are listed.
    const errors = problem.errors && problem.errors.length > 1 ? problem.errors : [];
    el.errorList.replaceChildren(
      ...errors.map((item) => {
        const li = document.createElement("li");
        li.textContent = item.field ? `${item.field}: ${item.message}` : String(item.message || item);
        return li;
      }),
    );
    el.error.hidden = false;
    if (problem.status === 401 || problem.status === 403) {
      el.apiKey.closest("details").open = true;
    }
    el.error.focus();
  }

  function clearError() {
    el.error.hidden = true;
    el.errorTitle.textContent = "";
    el.errorDetail.textContent = "";
    el.errorList.replaceChildren();
  }

  function networkProblem(what) {
    return {
      status: 0,
      title: "Could not reach the server",
      detail: `${what} failed: check your connection and try again.`,
      errors: [],
    };
  }

  // ---------- HTTP ----------

  function headers(extra = {}) {
    const key = el.apiKey.value.trim();
    return key ? { ...extra, "X-API-Key": key } : extra;
  }

  async function api(path, options = {}) {
    let response;
    try {
      response = await fetch(path.startsWith("http") || path.startsWith("/") ? path : `${API}/${path}`, {
        ...options,
        headers: headers(options.headers || {}),
      });
    } catch {
      throw new ApiError(networkProblem(options.method === "DELETE" ? "Deleting" : "The request"));
    }
    if (!response.ok) throw new ApiError(await problemFrom(response));
    return response;
  }

  // XMLHttpRequest for the submission: fetch() cannot report upload progress, which matters on a phone.
  function upload(formData, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `${API}/tryon`);
      for (const [name, value] of Object.entries(headers({ Accept: "application/json" }))) {
        xhr.setRequestHeader(name, value);
      }
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onProgress(event.loaded / event.total);
      });
      xhr.addEventListener("error", () => reject(new ApiError(networkProblem("Uploading the photos"))));
      xhr.addEventListener("load", () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          body = null;
        }
        if (xhr.status >= 200 && xhr.status < 300 && body) {
          resolve(body);
          return;
        }
        const retryAfter = xhr.getResponseHeader("retry-after");
        reject(
          new ApiError({
            status: xhr.status,
            title: body?.title || xhr.statusText || `HTTP ${xhr.status}`,
            detail: (body?.detail || "") + retryText(retryAfter),
            errors: Array.isArray(body?.errors) ? body.errors : [],
            retryAfter,
          }),
        );
      });
      xhr.send(formData);
    });
  }

  // ---------- photo pickers ----------

  function setFile(field, file, { fromExample = false } = {}) {
    state.files[field] = file;
    if (state.urls[field]) URL.revokeObjectURL(state.urls[field]);
    state.urls[field] = file ? URL.createObjectURL(file) : null;
    const preview = $(`${field}-preview`);
    const text = $(`${field}-text`);
    if (file) {
      preview.src = state.urls[field];
      preview.alt = `Preview of the ${field} photo`;
      preview.hidden = false;
      text.textContent = `${file.name} (${(file.size / 1024).toFixed(0)} KB). Choose another or drop it here`;
    } else {
      preview.removeAttribute("src");
      preview.alt = "";
      preview.hidden = true;
      text.textContent = "Choose a photo or drop it here";
      $(`${field}-input`).value = "";
    }
    if (field === "garment") state.exampleGarment = fromExample;
  }

  for (const field of ["person", "garment"]) {
    const preview = $(`${field}-preview`);
    preview.addEventListener("error", () => {
      if (!preview.getAttribute("src")) return;
      preview.hidden = true;
      $(`${field}-text`).textContent =
        `${state.files[field]?.name || "This file"} cannot be shown: it does not look like a photo. ` +
        "Choose another or drop it here";
    });
    const input = $(`${field}-input`);
    const drop = $(`${field}-drop`);
    input.addEventListener("change", () => {
      if (input.files && input.files[0]) setFile(field, input.files[0]);
    });
    for (const type of ["dragenter", "dragover"]) {
      drop.addEventListener(type, (event) => {
        event.preventDefault();
        drop.classList.add("dragging");
      });
    }
    for (const type of ["dragleave", "dragend"]) {
      drop.addEventListener(type, () => drop.classList.remove("dragging"));
    }
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("dragging");
      const file = event.dataTransfer?.files?.[0];
      if (file) setFile(field, file);
    });
  }

  async function fetchExample(path, name) {
    const response = await api(`${API}/examples/${path}`);
    const blob = await response.blob();
    return new File([blob], name, { type: blob.type || "image/png" });
  }

  async function loadExampleGarment() {
    const category = el.category.value;
    setFile("garment", await fetchExample(`garment.png?category=${encodeURIComponent(category)}`,
      `example-${category}.png`), { fromExample: true });
  }

  el.example.addEventListener("click", async () => {
    clearError();
    el.example.disabled = true;
    // The example person shows the upper body: pick a category the example has a garment for.
    if (!state.exampleCategories.includes(el.category.value)) el.category.value = state.exampleCategories[0];
    try {
      setFile("person", await fetchExample("person.png", "example-person.png"));
      await loadExampleGarment();
      el.submit.focus();
    } catch (error) {
      showError(error.problem || networkProblem("Loading the example"));
    } finally {
      el.example.disabled = false;
    }
  });

  // The example garment follows the chosen category (a dress for "dress", trousers for "lower_body").
  el.category.addEventListener("change", async () => {
    if (!state.exampleGarment) return;
    try {
      await loadExampleGarment();
    } catch (error) {
      showError(error.problem || networkProblem("Loading the example"));
    }
  });

  // ---------- progress ----------

  function announce(text) {
    if (text !== state.lastStageText) {
      state.lastStageText = text;
      el.live.textContent = text;
    }
  }

  function setProgress(value, text) {
    el.progress.value = Math.max(0, Math.min(100, value));
    el.progressLabel.textContent = text;
    announce(text.replace(/\s*\(\d+%\)$/, ""));
  }

  function stageText(doc) {
    if (doc.status === "queued") return STAGE_LABELS.queued;
    const label = STAGE_LABELS[doc.stage] || (doc.stage ? `Stage: ${doc.stage}` : "Starting");
    return `${label} (${Math.round(doc.progress || 0)}%)`;
  }

  function stopWatching() {
    if (state.source) {
      state.source.close();
      state.source = null;
    }
    if (state.pollTimer) {
      clearTimeout(state.pollTimer);
      state.pollTimer = null;
    }
  }

  function handleDocument(doc) {
    if (!state.job || doc.id !== state.job.id) return;
    if (!TERMINAL.has(doc.status)) {
      setProgress(doc.progress || 0, stageText(doc));
      return;
    }
    stopWatching();
    setBusy(false);
    el.progressSection.hidden = true;
    if (doc.status === "succeeded") {
      showResult(doc);
    } else if (doc.status === "failed") {
      announce("The try-on failed");
      showError({
        status: 0,
        title: "The try-on failed",
        detail: doc.error?.message || "The job failed without a message.",
        errors: doc.error?.code ? [{ field: "code", message: doc.error.code }] : [],
      });
    } else {
      announce("Cancelled");
    }
  }

  function poll() {
    if (!state.job) return;
    api(state.job.statusUrl, { headers: { Accept: "application/json" } })
      .then((response) => response.json())
      .then((doc) => {
        handleDocument(doc);
        if (state.job && !TERMINAL.has(doc.status)) state.pollTimer = setTimeout(poll, POLL_MS);
      })
      .catch((error) => {
        stopWatching();
        setBusy(false);
        el.progressSection.hidden = true;
        showError(error.problem || networkProblem("Checking the job"));
      });
  }

  // Server-sent events when possible; polling when EventSource is missing, breaks, or an API key must be
  // sent (EventSource cannot send headers).
  function watch() {
    stopWatching();
    if (!("EventSource" in window) || el.apiKey.value.trim()) {
      poll();
      return;
    }
    const source = new EventSource(state.job.eventsUrl);
    state.source = source;
    source.addEventListener("status", (event) => {
      try {
        handleDocument(JSON.parse(event.data));
      } catch {
        /* a malformed event is ignored; the next one or the poll fallback catches up */
      }
    });
    source.addEventListener("error", () => {
      if (state.source !== source) return;
      source.close();
      state.source = null;
      poll();
    });
  }

  // ---------- submit / result ----------

  function setBusy(busy) {
    el.submit.disabled = busy;
    el.example.disabled = busy;
    el.submit.textContent = busy ? "Working…" : "Try it on";
  }

  function formData(personFrom) {
    const data = new FormData();
    if (personFrom) data.append("person_from", personFrom);
    else data.append("person", state.files.person, state.files.person.name);
    data.append("garment", state.files.garment, state.files.garment.name);
    data.append("category", el.category.value);
    for (const name of ["seed", "steps", "guidance", "strength"]) {
      const value = numberField(el.form, name);
      if (value !== null) data.append(name, value);
    }
    return data;
  }

  function numberField(form, name) {
    const input = form.elements.namedItem(name);
    return input && input.value.trim() !== "" ? input.value.trim() : null;
  }

  el.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    const missing = ["person", "garment"].filter((field) => !state.files[field]);
    if (missing.length) {
      showError({
        status: 0,
        title: "Two photos are needed",
        detail: `Choose the ${missing.join(" and the ")} photo first.`,
        errors: [],
      });
      $(`${missing[0]}-input`).focus();
      return;
    }
    el.resultSection.hidden = true;
    el.progressSection.hidden = false;
    setBusy(true);
    setProgress(0, "Uploading the photos (0%)");
    const person = state.files.person;
    const progress = (fraction) => setProgress(0, `Uploading the photos (${Math.round(fraction * 100)}%)`);
    try {
      let job;
      // The same person photo as the last job: the server reuses its copy (person_from), no upload.
      const earlier = state.personJob && state.personJob.file === person ? state.personJob.id : null;
      try {
        job = await upload(formData(earlier), progress);
      } catch (error) {
        const fields = (error.problem?.errors || []).map((item) => item.field);
        if (!earlier || !fields.includes("person_from")) throw error;
        state.personJob = null; // that job's photo is gone: upload the photo after all
        job = await upload(formData(null), progress);
      }
      state.personJob = { file: person, id: job.id };
      state.job = { id: job.id, statusUrl: job.status_url, eventsUrl: job.events_url };
      handleDocument(job);
      if (!TERMINAL.has(job.status)) watch();
    } catch (error) {
      setBusy(false);
      el.progressSection.hidden = true;
      showError(error.problem || networkProblem("Uploading the photos"));
    }
  });

  function formatTimings(timings) {
    // "total" is the whole job; without it, the stages' sum.
    const stages = Object.entries(timings || {}).filter(([name]) => name !== "total");
    const total = Number(timings?.total) || stages.reduce((sum, [, value]) => sum + Number(value || 0), 0);
    return total > 0 ? `in ${total.toFixed(1)} s` : "";
  }

  async function showResult(doc) {
    el.original.src = state.urls.person;
    el.before.src = state.urls.person;
    el.result.src = doc.result_url;
    el.download.href = doc.download_url || doc.result_url;
    el.timing.textContent = formatTimings(doc.timings);
    el.expiry.textContent = doc.result_expires_at
      ? `The download link works until ${new Date(doc.result_expires_at).toLocaleString()}.`
      : "";
    el.resultSection.hidden = false;
    setProgress(100, "Done");
    announce("Done: the result is ready");
    el.resultHeading.focus();
  }

  function updateCompare() {
    const value = Number(el.compareRange.value);
    el.compareFrame.style.setProperty("--split", `${value}%`);
    el.compareRange.setAttribute("aria-valuetext", `${value}% result shown`);
  }
  el.compareRange.addEventListener("input", updateCompare);
  updateCompare();

  el.cancel.addEventListener("click", async () => {
    if (!state.job) return;
    await deleteJob("Cancelled");
  });

  async function deleteJob(message) {
    const job = state.job;
    if (!job) return;
    clearError();
    try {
      await api(job.statusUrl, { method: "DELETE" });
    } catch (error) {
      if (error.problem?.status !== 404) {
        showError(error.problem || networkProblem("Deleting"));
        return;
      }
    }
    stopWatching();
    if (state.personJob?.id === job.id) state.personJob = null; // its person photo was deleted with it
    state.job = null;
    setBusy(false);
    el.progressSection.hidden = true;
    el.resultSection.hidden = true;
    el.result.removeAttribute("src");
    el.download.href = "#";
    announce(message);
  }

  el.del.addEventListener("click", () => deleteJob("The job and its photos were deleted"));

  el.another.addEventListener("click", () => {
    setFile("garment", null);
    el.resultSection.hidden = true;
    announce("Choose another garment; the person photo is kept");
    $("garment-input").focus();
  });

  // The form's own limit hint follows the server (GET /api/limits), when it answers.
  fetch(`${API}/limits`, { headers: { Accept: "application/json" } })
    .then((response) => (response.ok ? response.json() : null))
    .then((limits) => {
      if (limits?.max_upload_mb) $("max-mb").textContent = String(limits.max_upload_mb);
      if (limits?.example_categories?.length) state.exampleCategories = limits.example_categories;
    })
    .catch(() => {});
})();
