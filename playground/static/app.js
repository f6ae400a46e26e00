"use strict";
/*
 * OneWord playground: a Telegram-like chat page over the local Bot API server.
 *
 * The page plays the simulated users through the control API (/control/..., passed through by
 * the playground server) and draws what is in each chat: both sides, albums, replies, inline
 * buttons, stickers, and the bot's status messages as they are edited. It follows changes with
 * the control API's long poll (GET /control/wait), so progress shows up as it happens.
 */

const $ = (selector) => document.querySelector(selector);

/** A new element with properties (className, textContent, title, ...) and children. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const state = {
  setup: null,                 // /api/setup: bot, users, chats, samples
  users: new Map(),            // user id -> User
  chats: [],                   // [{id, type, title, members}]
  current: null,               // open chat id
  actAs: new Map(),            // chat id -> id of the user you play there
  records: new Map(),          // chat id -> Map(message id -> control API record)
  seen: new Map(),             // chat id -> highest message id looked at
  nodes: new Map(),            // first message id of a row -> {node, sig} (open chat)
  replyTo: null,               // {chatId, record}
  scenes: new Map(),           // "chat:message" -> sample scene sent from the samples panel
  version: 0,                  // control API change counter already drawn
  stickToBottom: true,
};

// -------------------------------------------------------------------------- control API

/** Call the control API; resolves to its result, throws Error(message) when refused. */
async function control(method, path, body) {
  const init = { method };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "Content-Type": "application/json" };
  }
  const response = await fetch(`/control${path}`, init);
  let data;
  try {
    data = await response.json();
  } catch {
    throw new Error(`the local Telegram answered HTTP ${response.status}`);
  }
  if (!data.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data.result;
}

const fileUrl = (fileId) => `/control/files/${encodeURIComponent(fileId)}`;
const me = (chatId = state.current) => state.actAs.get(chatId);
const chatById = (chatId) => state.chats.find((chat) => chat.id === chatId);

// ----------------------------------------------------------------------------- start-up

async function main() {
  state.setup = await (await fetch("/api/setup")).json();
  for (const user of state.setup.users) state.users.set(user.id, user);
  state.chats = state.setup.chats;
  for (const chat of state.chats) {
    state.actAs.set(chat.id, chat.members[0]);
    state.records.set(chat.id, new Map());
    state.seen.set(chat.id, 0);
  }
  renderSamples();
  bindComposer();
  openChat(state.chats[0].id);
  watchServices();
  follow();
}

/** Redraw whenever the local Telegram changes (long poll), forever. */
async function follow() {
  for (;;) {
    try {
      await refreshAll();
      const answer = await control("GET", `/wait?since=${state.version}&timeout=25`);
      if (answer.version === state.version) continue;
    } catch (error) {
      setStatus("down", `Playground unreachable: ${error.message}`);
      await sleep(2000);
    }
  }
}

async function refreshAll() {
  let version = null;
  for (const chat of state.chats) {
    const result = await control("GET", `/chats/${chat.id}/messages`);
    if (version === null) version = result.version;  // the oldest view: nothing is missed
    const records = new Map(result.messages.map((record) => [record.message_id, record]));
    noticeForceReply(chat.id, state.records.get(chat.id), records);
    state.records.set(chat.id, records);
  }
  state.version = version;
  renderChatList();
  renderMessages();
}

/** Telegram clients answer a bot's ForceReply by replying to it: do the same. */
function noticeForceReply(chatId, before, after) {
  if (chatId !== state.current || state.replyTo || before.size === 0) return;
  for (const [id, record] of after) {
    const asked = record.reply_keyboard && record.reply_keyboard.force_reply;
    const replied = record.message.reply_to_message;
    if (!before.has(id) && asked && replied && replied.from && replied.from.id === me(chatId)) {
      setReply(chatId, record);
    }
  }
}

async function watchServices() {
  for (;;) {
    try {
      const status = await (await fetch("/api/status")).json();
      if (status.worker_ready) {
        setStatus("ready", "Worker ready: learning and editing work");
        return;
      }
      setStatus("loading", "Worker: loading the model… (messages queue meanwhile)");
    } catch {
      setStatus("down", "Playground stopped");
    }
    await sleep(2000);
  }
}

function setStatus(kind, text) {
  const node = $("#service-status");
  node.className = `status ${kind}`;
  node.textContent = text;
}

// ------------------------------------------------------------------------------- chats

function openChat(chatId) {
  state.current = chatId;
  clearReply();
  const chat = chatById(chatId);
  $("#chat-title").textContent = chat.title;
  $("#chat-avatar").textContent = chat.title[0];
  const names = chat.members.map((id) => state.users.get(id).first_name);
  $("#chat-subtitle").textContent = chat.type === "private"
    ? `bot · you are ${names[0]}` : `${names.length + 1} members: ${names.join(", ")} and the bot`;
  const picker = $("#member-select");
  picker.replaceChildren(...chat.members.map((id) => el("option", {
    value: String(id), textContent: state.users.get(id).first_name,
    selected: id === me(chatId),
  })));
  $("#member-picker").hidden = chat.type === "private";
  $("#messages").dataset.empty = chat.type === "private"
    ? "No messages yet.\nSay /start, or /learn mochi and then click a sample set."
    : "No messages yet.\nPick who you are, then send a scene and reply to it with a command "
      + "such as /remove star.";
  redrawMessages();
  renderChatList();
  $("#text").focus();
}

function renderChatList() {
  const list = $("#chat-list");
  list.replaceChildren(...state.chats.map((chat) => {
    const records = [...state.records.get(chat.id).values()].filter((r) => !r.deleted);
    const last = records[records.length - 1];
    const unread = chat.id === state.current ? 0 : records.filter(
      (r) => r.message_id > state.seen.get(chat.id) && senderId(r) !== me(chat.id)).length;
    const preview = last ? `${last.from_bot ? "" : `${senderName(last)}: `}${snippet(last)}` : "";
    return el("li", {
      className: chat.id === state.current ? "active" : "",
      onclick: () => openChat(chat.id), dataset: { chat: String(chat.id) },
    },
    el("div", { className: "avatar", textContent: chat.title[0] }),
    el("div", { className: "chat-info" },
      el("div", { className: "chat-name", textContent: chat.title }),
      el("div", { className: "preview", textContent: preview })),
    unread ? el("span", { className: "badge", textContent: String(unread) }) : null);
  }));
}

function senderId(record) {
  return record.message.from ? record.message.from.id : null;
}

function senderName(record) {
  if (record.from_bot) return state.setup.bot.first_name;
  const from = record.message.from;
  return from ? from.first_name : "?";
}

/** A short description of a message, for previews, quotes and the reply bar. */
function snippet(record) {
  const message = record.message || record;
  const text = message.text || message.caption || "";
  const kind = message.photo ? "Photo" : message.sticker ? "Sticker"
    : message.document ? `File ${message.document.file_name || ""}`.trim() : "";
  return [kind, text].filter(Boolean).join(": ").replace(/\s+/g, " ").slice(0, 120);
}

// ---------------------------------------------------------------------------- messages

function redrawMessages() {
  state.nodes.clear();
  $("#messages").replaceChildren();
  state.stickToBottom = true;
  renderMessages();
}

/** Draw the open chat, replacing only the rows whose messages changed. */
function renderMessages() {
  const box = $("#messages");
  const chatId = state.current;
  if (chatId === null) return;
  if (box.scrollHeight - box.scrollTop - box.clientHeight < 80) state.stickToBottom = true;
  const records = [...state.records.get(chatId).values()]
    .filter((record) => !record.deleted)
    .sort((a, b) => a.message_id - b.message_id);
  const keep = new Set();
  let previous = null;
  for (const group of albums(records)) {
    const key = group[0].message_id;
    const sig = JSON.stringify(group.map((r) => [r.message_id, r.edit_count, r.texts.length,
      r.message.reply_markup || null])) + me(chatId);
    let entry = state.nodes.get(key);
    if (!entry || entry.sig !== sig) {
      const node = messageRow(chatId, group);
      if (entry) entry.node.replaceWith(node);
      entry = { node, sig };
      state.nodes.set(key, entry);
    }
    const expected = previous ? previous.nextSibling : box.firstChild;
    if (entry.node !== expected) box.insertBefore(entry.node, expected);
    keep.add(key);
    previous = entry.node;
  }
  for (const [key, entry] of state.nodes) {
    if (!keep.has(key)) {
      entry.node.remove();
      state.nodes.delete(key);
    }
  }
  const last = records[records.length - 1];
  if (last) state.seen.set(chatId, Math.max(state.seen.get(chatId), last.message_id));
  if (state.stickToBottom) scrollToBottom();
}

function scrollToBottom() {
  const box = $("#messages");
  box.scrollTop = box.scrollHeight;
  state.stickToBottom = true;
}

/** Photos of one album sent by one person in a row are drawn as one message. */
function albums(records) {
  const groups = [];
  for (const record of records) {
    const group = groups[groups.length - 1];
    const album = record.message.media_group_id;
    if (group && album && group[0].message.media_group_id === album) group.push(record);
    else groups.push([record]);
  }
  return groups;
}

function messageRow(chatId, group) {
  const first = group[0];
  const message = first.message;
  const chat = chatById(chatId);
  const mine = !first.from_bot && senderId(first) === me(chatId);
  const bubble = el("div", { className: message.sticker ? "bubble sticker" : "bubble" });
  if (!mine && (chat.type !== "private" || first.from_bot) && !message.sticker) {
    bubble.append(el("div", {
      className: first.from_bot ? "sender bot" : "sender", textContent: senderName(first),
    }));
  }
  if (message.reply_to_message) bubble.append(quote(chatId, message.reply_to_message));
  const media = mediaOf(group);
  if (media) bubble.append(media);
  const text = group.map((r) => r.message.text || r.message.caption).find(Boolean);
  if (text) bubble.append(el("div", { className: "text", textContent: text }));
  const time = new Date(message.date * 1000).toLocaleTimeString([], {
    hour: "2-digit", minute: "2-digit",
  });
  bubble.append(el("div", {
    className: "meta", textContent: first.edit_count ? `edited ${time}` : time,
  }));
  const reply = el("button", {
    className: "reply-btn", type: "button", title: "Reply", textContent: "↩",
    onclick: () => setReply(chatId, group[group.length - 1]),
  });
  // As in Telegram, inline buttons sit under the bubble, as wide as it, not inside it.
  const stack = el("div", { className: "stack" }, bubble);
  const keyboard = message.reply_markup && message.reply_markup.inline_keyboard;
  if (keyboard) stack.append(inlineKeyboard(chatId, first, keyboard));
  const row = el("div", {
    className: mine ? "msg mine" : "msg", dataset: { mid: String(first.message_id) },
  });
  if (mine) row.append(reply, stack);
  else row.append(stack, reply);
  return row;
}

function mediaOf(group) {
  const photos = group.filter((r) => r.message.photo || imageDocument(r.message));
  if (photos.length) {
    const box = el("div", { className: photos.length > 1 ? "photos album" : "photos single" });
    for (const record of photos) box.append(picture(record.message));
    return box;
  }
  const message = group[0].message;
  if (message.sticker) {
    return el("div", { className: "sticker" }, image(message.sticker.file_id, "sticker"));
  }
  const file = message.document || message.animation;
  if (file) return el("div", { className: "document", textContent: file.file_name || "file" });
  return null;
}

function imageDocument(message) {
  const doc = message.document;
  return doc && (doc.mime_type || "").startsWith("image/") && doc.mime_type !== "image/gif";
}

/** A photo at a size fit for the chat; a click shows the largest one. */
function picture(message) {
  if (!message.photo) return image(message.document.file_id, "photo");
  const sizes = message.photo;
  const fit = sizes.filter((s) => Math.max(s.width, s.height) <= 800);
  const shown = fit.length ? fit[fit.length - 1] : sizes[sizes.length - 1];
  const node = image(shown.file_id, "photo");
  node.onclick = () => showLightbox(fileUrl(sizes[sizes.length - 1].file_id));
  return node;
}

function image(fileId, alt) {
  const node = el("img", { src: fileUrl(fileId), alt, loading: "eager" });
  node.onload = () => { if (state.stickToBottom) scrollToBottom(); };
  return node;
}

function quote(chatId, replied) {
  const name = replied.from
    ? (replied.from.id === state.setup.bot.id ? state.setup.bot.first_name : replied.from.first_name)
    : "?";
  return el("div", {
    className: "quote", title: "Show the message",
    onclick: () => flash(replied.message_id),
  }, el("b", { textContent: name }), snippet(replied) || "Message");
}

function flash(messageId) {
  const row = document.querySelector(`.msg[data-mid="${messageId}"]`)
    || [...document.querySelectorAll(".msg")].find((node) => {
      const entry = [...state.nodes.values()].find((e) => e.node === node);
      return entry && JSON.parse(entry.sig).some(([id]) => id === messageId);
    });
  if (!row) return;
  row.scrollIntoView({ behavior: "smooth", block: "center" });
  row.classList.remove("flash");
  void row.offsetWidth;
  row.classList.add("flash");
}

// ----------------------------------------------------------------------- inline buttons

function inlineKeyboard(chatId, record, rows) {
  return el("div", { className: "keyboard" }, ...rows.map((row) => el("div", { className: "row" },
    ...row.map((button) => el("button", {
      type: "button", textContent: button.text,
      onclick: (event) => press(chatId, record, button, event.currentTarget),
    })))));
}

/** Press an inline button as the user you play, then show the bot's answer to the press. */
async function press(chatId, record, button, node) {
  if (button.url) {
    toast(`This button opens ${button.url} (not reachable from the playground).`);
    return;
  }
  node.disabled = true;
  try {
    const query = await control("POST", `/chats/${chatId}/messages/${record.message_id}/press`, {
      user_id: me(chatId), callback_data: button.callback_data,
    });
    const answer = await callbackAnswer(query.id);
    if (answer && answer.text) toast(answer.text, answer.show_alert);
  } catch (error) {
    toast(`Could not press it: ${error.message}`, true);
  } finally {
    node.disabled = false;
  }
}

async function callbackAnswer(queryId, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const stats = await control("GET", "/stats");
    const answers = await control("GET", `/callback_answers?query_id=${encodeURIComponent(queryId)}`);
    if (answers.length) return answers[0];
    await control("GET", `/wait?since=${stats.version}&timeout=5`);
  }
  return null;
}

// ----------------------------------------------------------------------------- replying

function setReply(chatId, record) {
  state.replyTo = { chatId, record };
  $("#reply-who").textContent = `Reply to ${senderName(record)}`;
  $("#reply-snippet").textContent = snippet(record) || "Message";
  const chips = $("#reply-chips");
  chips.replaceChildren(...suggestions(chatId, record).map((text) => el("button", {
    type: "button", textContent: text.split(" | ")[0], title: text,
    onclick: () => fillComposer(text),
  })));
  $("#reply-bar").hidden = false;
  $("#text").focus();
}

function clearReply() {
  state.replyTo = null;
  $("#reply-bar").hidden = true;
  $("#reply-chips").replaceChildren();
}

/**
 * Commands worth trying on a replied-to photo. For a sample scene they name its shapes and end
 * with its description after "|"; NAME and STYLE stand for words you have not taught yet.
 */
function suggestions(chatId, record) {
  if (!record.message.photo && !imageDocument(record.message)) return [];
  const scene = state.scenes.get(`${chatId}:${record.message_id}`);
  const slash = chatById(chatId).type === "private" ? "" : "/";
  const names = learnedNames(chatId);
  const about = scene ? ` | ${scene.caption}` : "";
  const list = [`${slash}add ${names.object}${about}`];
  if (scene && scene.subjects.length) {
    list.push(`${slash}replace ${scene.subjects[0]} with ${names.object}${about}`);
  }
  list.push(`${slash}restyle as ${names.style}${about}`);
  if (scene && scene.subjects.length) {
    list.push(`${slash}remove ${scene.subjects[scene.subjects.length - 1]}${about}`);
  }
  list.push(scene ? `/sticker ${scene.caption}` : "/sticker");
  return list;
}

/** The last words you taught in this chat with /learn (objects and styles apart). */
function learnedNames(chatId) {
  const names = { object: "NAME", style: "STYLE" };
  for (const record of state.records.get(chatId).values()) {
    const text = record.message.text || "";
    const match = /^\/learn(?:@\w+)?\s+([\w-]+)(?:\s+(\w+))?/i.exec(text);
    if (!match || senderId(record) !== me(chatId)) continue;
    if ((match[2] || "").toLowerCase() === "style") names.style = match[1];
    else names.object = match[1];
  }
  return names;
}

function fillComposer(text) {
  const box = $("#text");
  box.value = text;
  box.focus();
  const placeholder = /\b(NAME|STYLE)\b/.exec(text);
  if (placeholder) box.setSelectionRange(placeholder.index, placeholder.index + placeholder[0].length);
  else box.setSelectionRange(text.length, text.length);
  autosize();
}

// ------------------------------------------------------------------------------ sending

function bindComposer() {
  const text = $("#text");
  $("#composer").addEventListener("submit", (event) => {
    event.preventDefault();
    sendText();
  });
  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      sendText();
    }
  });
  text.addEventListener("input", autosize);
  $("#file-input").addEventListener("change", async (event) => {
    const files = [...event.target.files];
    event.target.value = "";
    if (files.length) await sendPictures(files, text.value.trim());
    text.value = "";
  });
  $("#reply-cancel").onclick = clearReply;
  $("#member-select").onchange = (event) => {
    state.actAs.set(state.current, Number(event.target.value));
    redrawMessages();
  };
  $("#samples-toggle").onclick = () => toggleSamples();
  $("#commands-button").onclick = toggleCommands;
  $("#messages").addEventListener("scroll", () => {
    const box = $("#messages");
    state.stickToBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  });
  $("#lightbox").onclick = () => { $("#lightbox").hidden = true; };
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    $("#lightbox").hidden = true;
    $("#commands-menu").hidden = true;
    clearReply();
  });
  toggleSamples(window.innerWidth > 1100);
}

function autosize() {
  const box = $("#text");
  box.style.height = "auto";
  box.style.height = `${Math.min(box.scrollHeight, 140)}px`;
}

function replyField() {
  const reply = state.replyTo;
  return reply && reply.chatId === state.current ? reply.record.message_id : null;
}

async function sendText() {
  const box = $("#text");
  const text = box.value.trim();
  if (!text) return;
  const body = { user_id: me(), text };
  const replyTo = replyField();
  if (replyTo !== null) body.reply_to = replyTo;
  try {
    await control("POST", `/chats/${state.current}/messages`, body);
    box.value = "";
    autosize();
    clearReply();
    scrollToBottom();
  } catch (error) {
    toast(`Not sent: ${error.message}`, true);
  }
}

/** One picture goes as a photo, several (up to ten) as an album; returns the records. */
async function sendPictures(files, caption = "") {
  const chatId = state.current;
  const form = new FormData();
  form.append("user_id", String(me(chatId)));
  if (caption) form.append("caption", caption);
  const replyTo = replyField();
  if (replyTo !== null) form.append("reply_to", String(replyTo));
  for (const file of files.slice(0, 10)) form.append("file", file, file.name);
  if (files.length > 10) toast("An album holds at most 10 photos; sending the first 10.");
  try {
    const path = files.length > 1 ? "album" : "photo";
    const result = await control("POST", `/chats/${chatId}/${path}`, form);
    clearReply();
    scrollToBottom();
    return Array.isArray(result) ? result : [result];
  } catch (error) {
    toast(`Not sent: ${error.message}`, true);
    return [];
  }
}

// ------------------------------------------------------------------------------ samples

function toggleSamples(show) {
  const panel = $("#samples");
  const visible = show === undefined ? panel.hidden : show;
  panel.hidden = !visible;
  $("#samples-toggle").classList.toggle("on", visible);
}

function renderSamples() {
  const { sets, scenes } = state.setup.samples;
  $("#sample-sets").replaceChildren(...sets.map((set) => el("button", {
    type: "button", className: "sample-set", dataset: { set: set.name },
    title: `Send the ${set.files.length} photos as an album`,
    onclick: () => sendSampleSet(set),
  },
  el("b", { textContent: `${set.label} · ${set.files.length} photos` }),
  el("div", { className: "strip" }, ...set.files.map((src) => el("img", { src, alt: set.name }))))));
  $("#sample-scenes").replaceChildren(...scenes.map((scene) => el("button", {
    type: "button", className: "sample-scene", dataset: { scene: scene.file },
    title: "Send this photo", onclick: () => sendScene(scene),
  }, el("img", { src: scene.file, alt: "scene" }), el("span", { textContent: scene.caption }))));
}

async function sampleFile(url) {
  const blob = await (await fetch(url)).blob();
  return new File([blob], url.split("/").pop(), { type: blob.type || "image/png" });
}

async function sendSampleSet(set) {
  const files = await Promise.all(set.files.map(sampleFile));
  await sendPictures(files);
}

async function sendScene(scene) {
  const chatId = state.current;
  const [record] = await sendPictures([await sampleFile(scene.file)]);
  if (!record) return;
  state.scenes.set(`${chatId}:${record.message_id}`, scene);
  setReply(chatId, record);
}

// ----------------------------------------------------------------------------- commands

async function toggleCommands() {
  const menu = $("#commands-menu");
  if (!menu.hidden) {
    menu.hidden = true;
    return;
  }
  const wanted = chatById(state.current).type === "private" ? "all_private_chats" : "all_group_chats";
  let commands = [];
  try {
    const lists = await control("GET", "/commands");
    const pick = lists.find((l) => l.scope && l.scope.type === wanted)
      || lists.find((l) => !l.scope || l.scope.type === "default");
    commands = pick ? pick.commands : [];
  } catch (error) {
    toast(error.message, true);
  }
  if (!commands.length) commands = [{ command: "help", description: "the bot has not set its commands yet" }];
  menu.replaceChildren(...commands.map((c) => el("li", {
    onclick: () => {
      menu.hidden = true;
      fillComposer(`/${c.command} `);
    },
  }, el("b", { textContent: `/${c.command}` }), c.description)));
  menu.hidden = false;
}

// ----------------------------------------------------------------------------- overlays

let toastTimer = null;

/** A short notice at the top, or (alert) a box in the middle, as Telegram shows answers. */
function toast(text, alert = false) {
  const node = $("#toast");
  node.textContent = text;
  node.className = alert ? "alert" : "";
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { node.hidden = true; }, alert ? 6000 : 3000);
  node.onclick = () => { node.hidden = true; };
}

function showLightbox(src) {
  const box = $("#lightbox");
  box.querySelector("img").src = src;
  box.hidden = false;
}

main().catch((error) => setStatus("down", `The page could not start: ${error.message}`));
