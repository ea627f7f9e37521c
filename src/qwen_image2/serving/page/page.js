// The page of `qwen-image2 serve`: one request at a time, streamed so the step previews show as they are
// made, and a gallery of what the server made, where thumbs up / down (with a comment) feed the data
// flywheel. Plain script, no build step: everything goes through the same /v1 API any client uses.
(function () {
  "use strict";

  const KEY_STORAGE = "qwen-image2-api-key";
  const MAX_IMAGES = 10; // the server's default limit of condition images per edit
  const PARTIAL_IMAGES = 3; // the most previews the API sends (OpenAI's limit too)
  const MIME = { png: "image/png", jpeg: "image/jpeg", webp: "image/webp" };
  const UPLOAD_TYPES = new Set(Object.values(MIME)); // what the server reads
  const $ = (id) => document.getElementById(id);

  const state = {
    mode: "generate",
    files: [], // [{file, url}] in the order they go to the server: image 1 is the one edited
    running: null, // the AbortController of the request in flight
    votes: new Map(), // image id -> "up" | "down", so a gallery refresh keeps what was chosen
    comments: new Map(), // image id -> comment being written, kept across refreshes
  };

  // --- talking to the server ------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  function apiKey() {
    return localStorage.getItem(KEY_STORAGE) || "";
  }

  // Every /v1 call goes through here: it adds the key and turns any refusal into an ApiError carrying
  // the server's own message ({"error": {"message", ...}}).
  async function api(path, init = {}) {
    const headers = new Headers(init.headers || {});
    const key = apiKey();
    if (key) headers.set("Authorization", "Bearer " + key);
    const response = await fetch(path, { ...init, headers });
    if (response.status === 401) askForKey();
    if (!response.ok) throw new ApiError(await errorMessage(response), response.status);
    return response;
  }

  async function errorMessage(response) {
    const text = await response.text().catch(() => "");
    try {
      const body = JSON.parse(text);
      if (body && body.error && body.error.message) return body.error.message;
    } catch (_) {
      // not JSON (a proxy's page, say): fall through to the status line
    }
    return `The server answered ${response.status} ${response.statusText}` + (text ? `: ${text.slice(0, 200)}` : "");
  }

  function askForKey() {
    const panel = $("key-panel");
    if (!panel.hidden) return;
    panel.hidden = false;
    $("api-key").value = apiKey();
    $("api-key").focus();
  }

  function saveKey() {
    const key = $("api-key").value.trim();
    if (!key) return;
    localStorage.setItem(KEY_STORAGE, key);
    $("key-panel").hidden = true;
    clearError();
    loadModels();
    loadHistory();
  }

  // --- messages -------------------------------------------------------------------------------------

  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  function setStatus(text) {
    $("status").textContent = text;
  }

  // --- models ---------------------------------------------------------------------------------------

  async function loadModels() {
    try {
      const body = await (await api("/v1/models")).json();
      const select = $("model");
      const keep = select.value;
      select.replaceChildren(
        ...body.data.map((model) => new Option(model.id, model.id, false, model.id === keep))
      );
    } catch (err) {
      showError(err.message);
    }
  }

  // --- mode and condition images --------------------------------------------------------------------

  function setMode(mode) {
    state.mode = mode;
    for (const button of document.querySelectorAll(".modes button")) {
      const on = button.dataset.mode === mode;
      button.classList.toggle("chosen", on);
      button.setAttribute("aria-selected", String(on));
    }
    const edit = mode === "edit";
    $("edit-panel").hidden = !edit;
    $("prompt-label").textContent = edit ? "Instruction" : "Prompt";
    $("prompt").placeholder = edit ? "What to change (image 1, image 2, ... name the images in order)" : "What to draw";
    $("submit").textContent = edit ? "Edit" : "Generate";
  }

  function addFiles(fileList) {
    const images = [...fileList].filter((file) => UPLOAD_TYPES.has(file.type));
    const refused = fileList.length - images.length;
    const room = MAX_IMAGES - state.files.length;
    const problems = [];
    if (refused) problems.push(`${refused} file(s) are not PNG, JPEG or WebP`);
    if (images.length > room) problems.push(`at most ${MAX_IMAGES} images: ${images.length - room} not added`);
    for (const file of images.slice(0, room)) state.files.push({ file, url: URL.createObjectURL(file) });
    if (problems.length) showError(problems.join("; ") + ".");
    else clearError();
    renderThumbs();
  }

  function renderThumbs() {
    const last = state.files.length - 1;
    const items = state.files.map(({ file, url }, index) => {
      const item = document.createElement("li");
      item.className = "thumb";
      item.dataset.testid = "thumb";
      item.dataset.index = String(index);
      item.dataset.name = file.name;
      const img = document.createElement("img");
      img.src = url;
      img.alt = `image ${index + 1}: ${file.name}`;
      const caption = document.createElement("span");
      caption.className = "small";
      caption.textContent = `image ${index + 1}`;
      const tools = document.createElement("div");
      tools.className = "thumb-tools";
      tools.append(
        thumbButton("left", "←", "Move earlier", index === 0),
        thumbButton("right", "→", "Move later", index === last),
        thumbButton("remove", "✕", "Remove", false)
      );
      item.append(img, caption, tools);
      return item;
    });
    $("thumbs").replaceChildren(...items);
  }

  function thumbButton(action, text, title, disabled) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.action = action;
    button.dataset.testid = "thumb-" + action;
    button.textContent = text;
    button.title = title;
    button.setAttribute("aria-label", title);
    button.disabled = disabled;
    return button;
  }

  function onThumbClick(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const index = Number(button.closest(".thumb").dataset.index);
    const files = state.files;
    if (button.dataset.action === "remove") {
      URL.revokeObjectURL(files[index].url);
      files.splice(index, 1);
    } else {
      const other = index + (button.dataset.action === "left" ? -1 : 1);
      [files[index], files[other]] = [files[other], files[index]];
    }
    renderThumbs();
  }

  function wireDropZone() {
    const zone = $("drop-zone");
    for (const name of ["dragenter", "dragover"]) {
      zone.addEventListener(name, (event) => {
        event.preventDefault(); // without it the browser refuses the drop
        zone.classList.add("over");
      });
    }
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      if (event.dataTransfer && event.dataTransfer.files.length) addFiles(event.dataTransfer.files);
    });
    zone.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        $("file-input").click();
      }
    });
    $("file-input").addEventListener("change", (event) => {
      addFiles(event.target.files);
      event.target.value = ""; // so choosing the same file again still fires `change`
    });
    // A file dropped beside the zone would make the browser open it and lose the page's state.
    for (const name of ["dragover", "drop"]) {
      window.addEventListener(name, (event) => {
        if (!zone.contains(event.target)) event.preventDefault();
      });
    }
  }

  // --- one request, streamed ------------------------------------------------------------------------

  // The request's fields; empty numeric fields are left out so the server's defaults apply.
  function requestFields(prompt) {
    const fields = { prompt, model: $("model").value, size: $("size").value, stream: true, partial_images: PARTIAL_IMAGES };
    const numbers = [
      ["seed", "seed", true],
      ["steps", "num_inference_steps", true],
      ["guidance", "guidance_scale", false],
    ];
    for (const [id, name, integer] of numbers) {
      const input = $(id);
      if (input.validity.badInput) throw new ApiError(`The ${id} field is not a number.`);
      const text = input.value.trim();
      if (!text) continue;
      const value = Number(text);
      if (integer && !/^\d+$/.test(text)) throw new ApiError(`The ${id} must be a whole number.`);
      // A seed past 2^53 would lose digits as a JS number; the server also reads a numeric string.
      fields[name] = integer && !Number.isSafeInteger(value) ? text : value;
    }
    if (!fields.model) delete fields.model; // no model list (yet): the server's first
    return fields;
  }

  async function submit(event) {
    event.preventDefault();
    if (state.running) return;
    clearError();
    const prompt = $("prompt").value.trim();
    const edit = state.mode === "edit";
    if (!prompt) return showError(edit ? "Write an instruction first." : "Write a prompt first.");
    if (edit && !state.files.length) return showError("Add at least one image to edit, or switch to Generate.");
    let fields;
    try {
      fields = requestFields(prompt);
    } catch (err) {
      return showError(err.message);
    }
    const controller = new AbortController();
    const init = { method: "POST", signal: controller.signal };
    if (edit) {
      const form = new FormData();
      for (const [name, value] of Object.entries(fields)) form.append(name, String(value));
      for (const { file } of state.files) form.append("image[]", file, file.name);
      init.body = form; // the browser writes the multipart boundary into Content-Type
    } else {
      init.headers = { "Content-Type": "application/json" };
      init.body = JSON.stringify(fields);
    }
    state.running = controller;
    setBusy(true);
    startOutput();
    const started = performance.now();
    try {
      const response = await api(edit ? "/v1/images/edits" : "/v1/images/generations", init);
      const done = await readAnswer(response);
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      setStatus(`Done: ${done.size || "image"} in ${seconds} s.`);
    } catch (err) {
      if (err.name === "AbortError") {
        setStatus("Cancelled.");
      } else {
        setStatus("");
        showError(err.message);
      }
    } finally {
      state.running = null;
      setBusy(false);
      loadHistory();
    }
  }

  function setBusy(busy) {
    $("submit").disabled = busy;
    $("cancel").hidden = !busy;
  }

  // The output panel stays hidden until there is a picture to show (a refusal leaves it so).
  function startOutput() {
    const output = $("output");
    output.hidden = true;
    output.dataset.partials = "0";
    $("preview").hidden = true;
    $("result").hidden = true;
    setStatus("Waiting for the server…");
  }

  // The answer is server-sent events (`image_generation.*` or `image_edit.*`), read as they arrive;
  // resolves with the completed event's data.
  async function readAnswer(response) {
    const type = response.headers.get("content-type") || "";
    if (!type.startsWith("text/event-stream")) {
      // A server that answered without streaming: the whole JSON body at once.
      const body = await response.json();
      const item = body.data[0];
      showFinal({ ...item, output_format: body.output_format, size: body.size });
      return body;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let completed = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (value) buffer += decoder.decode(value, { stream: true });
      // An event ends at a blank line; a chunk may hold several events, or part of one.
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = parseEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (event) completed = handleEvent(event) || completed;
      }
      if (done) break;
    }
    if (!completed) throw new ApiError("The stream ended before the image was finished.");
    return completed;
  }

  function parseEvent(block) {
    let name = "message";
    const data = [];
    for (const raw of block.split("\n")) {
      const line = raw.replace(/\r$/, "");
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (!data.length) return null; // a comment or keep-alive
    return { name, data: JSON.parse(data.join("\n")) };
  }

  function handleEvent({ name, data }) {
    if (data.error) throw new ApiError(data.error.message || "The request failed.");
    if (name.endsWith(".partial_image")) {
      const output = $("output");
      output.dataset.partials = String(Number(output.dataset.partials) + 1);
      const preview = $("preview");
      preview.src = dataUrl(data);
      preview.hidden = false;
      output.hidden = false;
      setStatus(`step preview ${data.partial_image_index + 1} of ${PARTIAL_IMAGES}`);
      return null;
    }
    if (name.endsWith(".completed")) {
      showFinal(data);
      return data;
    }
    return null; // an event type this page does not know: ignore it, as SSE clients do
  }

  function dataUrl(item) {
    return `data:${MIME[item.output_format] || "image/png"};base64,${item.b64_json}`;
  }

  function showFinal(item) {
    $("result-image").src = dataUrl(item);
    const link = $("result-download");
    link.href = `/v1/images/${item.id}/content`;
    link.download = `qwen-image2-${item.id}.${item.output_format || "png"}`;
    $("preview").hidden = true;
    $("result").hidden = false;
    $("output").hidden = false;
  }

  // --- history and feedback -------------------------------------------------------------------------

  async function loadHistory() {
    try {
      const body = await (await api("/v1/history?limit=50")).json();
      renderHistory(body.data);
    } catch (err) {
      showError(err.message);
    }
  }

  function renderHistory(generations) {
    const template = $("history-item");
    const cards = [];
    for (const generation of generations) {
      for (const image of generation.images) {
        const card = template.content.firstElementChild.cloneNode(true);
        card.dataset.imageId = image.id;
        card.dataset.kind = generation.kind;
        card.dataset.model = generation.model;
        card.querySelector(".image-link").href = image.url;
        card.querySelector("img").src = image.url;
        card.querySelector(".prompt").textContent = generation.prompt;
        card.querySelector(".meta").textContent = describe(generation);
        const download = card.querySelector(".download");
        download.href = image.url;
        download.download = `qwen-image2-${image.id}`;
        const comment = card.querySelector(".comment");
        comment.value = state.comments.get(image.id) || "";
        markVote(card, state.votes.get(image.id));
        cards.push(card);
      }
    }
    $("history").replaceChildren(...cards);
    $("history-empty").hidden = cards.length > 0;
  }

  function describe(generation) {
    const s = generation.settings || {};
    const parts = [generation.kind, generation.model];
    if (s.size) parts.push(s.size);
    if (s.steps) parts.push(`${s.steps} steps`);
    if (s.seed !== null && s.seed !== undefined) parts.push(`seed ${s.seed}`);
    if (s.guidance_scale !== undefined && s.guidance_scale !== 1) parts.push(`guidance ${s.guidance_scale}`);
    if (s.negative_prompt) parts.push(`not: ${s.negative_prompt}`);
    parts.push(new Date(generation.created * 1000).toLocaleString());
    return parts.join(" · ");
  }

  function markVote(card, vote) {
    for (const button of card.querySelectorAll("button.vote")) {
      const on = button.dataset.vote === vote;
      button.classList.toggle("chosen", on);
      button.setAttribute("aria-pressed", String(on));
    }
  }

  async function vote(card, choice) {
    const imageId = card.dataset.imageId;
    const note = card.querySelector(".vote-note");
    note.classList.remove("failed");
    note.textContent = "Saving…";
    const comment = card.querySelector(".comment").value.trim();
    try {
      await api("/v1/feedback", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ image_id: imageId, vote: choice, comment: comment || null }),
      });
      state.votes.set(imageId, choice);
      markVote(card, choice);
      note.textContent = "Thanks, saved.";
    } catch (err) {
      note.classList.add("failed");
      note.textContent = err.message;
    }
  }

  function onHistoryEvent(event) {
    const card = event.target.closest(".card");
    if (!card) return;
    if (event.type === "click") {
      const button = event.target.closest("button.vote");
      if (button) vote(card, button.dataset.vote);
    } else if (event.target.classList.contains("comment")) {
      state.comments.set(card.dataset.imageId, event.target.value);
    }
  }

  // --- start ----------------------------------------------------------------------------------------

  for (const button of document.querySelectorAll(".modes button")) {
    button.addEventListener("click", () => setMode(button.dataset.mode));
  }
  $("request-form").addEventListener("submit", submit);
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("request-form").requestSubmit();
  });
  $("cancel").addEventListener("click", () => state.running && state.running.abort());
  $("thumbs").addEventListener("click", onThumbClick);
  $("history").addEventListener("click", onHistoryEvent);
  $("history").addEventListener("input", onHistoryEvent);
  $("refresh-history").addEventListener("click", loadHistory);
  $("save-key").addEventListener("click", saveKey);
  $("api-key").addEventListener("keydown", (event) => {
    if (event.key === "Enter") saveKey();
  });
  wireDropZone();
  setMode("generate");
  loadModels();
  loadHistory();
})();
