// The demo page: two devices publishing events to the collector and following their carts live (SSE).
"use strict";

const PRODUCTS = [
  { id: "SKU-LAMP", name: "Reading lamp", price: 4999 },
  { id: "SKU-CHAIR", name: "Oak chair", price: 12900 },
  { id: "SKU-RUG", name: "Wool rug", price: 8900 },
];
const token = Math.random().toString(36).slice(2, 10);
const phone = { channel: "mobile_app", anonymous: `anon-${token}`, device: `phone-${token}`, kind: "phone" };
const tablet = { channel: "tablet", anonymous: `anon-tab-${token}`, device: `tablet-${token}`, kind: "tablet",
                 customer: null };
let keys = {};
let readKey = null;  // live carts are customer data: read with the read key, not a channel key

function log(text) {
  const el = document.getElementById("log");
  el.textContent = `${new Date().toISOString().slice(11, 23)}  ${text}\n` + el.textContent;
}

async function sha256(text) {
  const data = new TextEncoder().encode(text.trim().toLowerCase());
  const digest = await crypto.subtle.digest("SHA-256", data);
  return Array.from(new Uint8Array(digest)).map((b) => b.toString(16).padStart(2, "0")).join("");
}

function identities(dev, extra) {
  return Object.assign({ anonymous_id: dev.anonymous, customer_id: dev.customer || null, email_hash: null,
                         phone_hash: null, loyalty_card: null }, extra || {});
}

async function send(dev, eventType, payload, extraIdentities) {
  const event = {
    event_type: eventType, occurred_at_ms: Date.now(), channel: dev.channel, source_system: "demo-page",
    device: { device_id: dev.device, kind: dev.kind, role: "customer_owned" },
    identities: identities(dev, extraIdentities), session_id: `sess-${dev.device}`, payload: payload,
  };
  const answer = await fetch("/v1/events", {
    method: "POST", headers: { "Content-Type": "application/json", "X-Api-Key": keys[dev.channel] },
    body: JSON.stringify(event),
  });
  const body = await answer.json();
  log(`${dev.kind}: ${eventType} -> ${answer.status}${answer.ok ? "" : " " + JSON.stringify(body)}`);
  return answer.ok;
}

function renderCart(prefix, data) {
  document.getElementById(`${prefix}-profile`).textContent = data.profile;
  const body = document.querySelector(`#${prefix}-cart tbody`);
  body.innerHTML = "";
  for (const line of data.cart.lines) {
    const product = PRODUCTS.find((p) => p.id === line.product_id);
    const row = document.createElement("tr");
    row.className = "line";
    row.dataset.product = line.product_id;
    row.dataset.quantity = String(line.quantity);
    row.innerHTML = `<td>${product ? product.name : line.product_id}</td><td>x ${line.quantity}</td>` +
                    `<td>${(line.unit_price_cents / 100).toFixed(2)} ${line.currency}</td>` +
                    `<td><span class="tag">${line.channel}</span></td>`;
    body.appendChild(row);
  }
}

async function showOpen() {
  // The record's open interactions: what this customer started and has not finished, where, with whom.
  const answer = await fetch(`/v1/customers/${encodeURIComponent(tablet.customer)}`, { headers: { "X-Api-Key": readKey } });
  if (!answer.ok) return;
  const list = document.getElementById("tablet-open");
  list.innerHTML = "";
  for (const open of (await answer.json()).customer.open_interactions || []) {
    const item = document.createElement("li");
    item.dataset.kind = open.kind;
    const place = open.store_id ? ` in store ${open.store_id}` : open.site ? ` on ${open.site}` : "";
    const who = open.actor_id ? ` with ${open.actor_id}` : "";
    const since = new Date(open.started_at_ms).toISOString().slice(11, 16);
    item.textContent = `${open.kind}${open.ref ? " " + open.ref : ""}: last on ${open.channel}${place}${who}, ` +
                       `since ${since} UTC${open.detail ? " (" + open.detail + ")" : ""}`;
    list.appendChild(item);
  }
}

let streams = {};
function follow(prefix, id) {
  if (streams[prefix]) streams[prefix].close();
  const url = `/v1/customers/${encodeURIComponent(id)}/cart/stream?api_key=${encodeURIComponent(readKey)}`;
  const source = new EventSource(url);
  source.addEventListener("cart", (message) => {
    renderCart(prefix, JSON.parse(message.data));
    // The record is written with the cart (one transaction): read it now to show what is still open.
    if (prefix === "tablet" && tablet.customer) showOpen();
  });
  streams[prefix] = source;
}

function productButtons(prefix, dev) {
  const box = document.getElementById(`${prefix}-products`);
  for (const product of PRODUCTS) {
    const button = document.createElement("button");
    button.textContent = `+ ${product.name}`;
    button.id = `${prefix}-add-${product.id}`;
    button.onclick = () => send(dev, "cart_line_added",
      { product_id: product.id, quantity: 1, unit_price_cents: product.price, currency: "EUR" });
    box.appendChild(button);
  }
}

async function main() {
  const config = await (await fetch("config.json")).json();
  keys = config.keys;
  readKey = config.read_key;
  // A fresh shopper per page load: an e-mail stays with the first customer who claimed it.
  for (const id of ["phone-email", "tablet-email"]) document.getElementById(id).value = `ana+${token}@example.com`;
  document.getElementById("phone-who").textContent = `anonymous id ${phone.anonymous}`;
  productButtons("phone", phone);
  productButtons("tablet", tablet);
  follow("phone", `anonymous:${phone.anonymous}`);
  document.getElementById("phone-save").onclick = async () => {
    // Still anonymous: the e-mail (hashed) is what later lets the tablet's login find this basket.
    const hash = await sha256(document.getElementById("phone-email").value);
    await send(phone, "identify", { traits: {} }, { email_hash: hash });
  };
  document.getElementById("tablet-login").onclick = async () => {
    const email = document.getElementById("tablet-email").value;
    const hash = await sha256(email);
    tablet.customer = `C-${hash.slice(0, 8)}-${token}`;
    if (await send(tablet, "login", { method: "password" }, { email_hash: hash })) {
      document.getElementById("tablet-who").textContent = `logged in as ${email} (${tablet.customer})`;
      follow("tablet", tablet.customer);
    }
  };
  log("ready: add products on the phone, save the basket, then log in on the tablet");
}
main();
