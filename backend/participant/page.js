// The participant's page: one POST (the click), then the long-poll until the outcome.
// USER_AUTH=none: a user id generated once and kept in this browser (a demo).
// USER_AUTH=jwt: the embedding site gives the user's token, in the address (#token=…) or by
// window.postMessage({type: "fcfs-token", token: "…"}) to this page's frame.
"use strict";
(() => {
  const main = document.getElementById("campaign");
  const campaign = main.dataset.campaign;
  const jwt = main.dataset.auth === "jwt";
  const button = document.getElementById("take-part");
  const message = document.getElementById("message");
  const ticket = document.getElementById("ticket");
  const base = `/api/campaigns/${campaign}/participation`;
  const store = window.localStorage;
  const WAIT_S = 25;
  let token = new URLSearchParams(window.location.hash.slice(1)).get("token");

  window.addEventListener("message", (event) => {
    if (event.data && event.data.type === "fcfs-token" && typeof event.data.token === "string") {
      token = event.data.token;
      if (!store.getItem(`fcfs-request-${campaign}`)) say("READY", "Ready: you can take part.");
    }
  });

  function say(status, text) {
    message.dataset.status = status;
    message.textContent = text;
  }

  function userId() {  // below 2^52: the range above is the simulator's, refused for real people
    let id = store.getItem("fcfs-user");
    if (!id) {
      const words = new Uint32Array(2);
      window.crypto.getRandomValues(words);
      id = String(((words[0] & 0xfffff) * 2 ** 32 + words[1]) || 1);
      store.setItem("fcfs-user", id);
    }
    return Number(id);
  }

  function idempotencyKey() {  // a retry of the click (a reload, a lost answer) is the same request
    const name = `fcfs-key-${campaign}`;
    let key = store.getItem(name);
    if (!key) {  // (crypto.randomUUID needs https; a phone on the venue's network may reach the door over http)
      const bytes = new Uint8Array(16);
      window.crypto.getRandomValues(bytes);
      key = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
      store.setItem(name, key);
    }
    return key;
  }

  function showTicket(data) {
    ticket.hidden = false;
    document.getElementById("ticket-number").textContent = `#${data.offset} (line ${data.partition})`;
  }

  function showLine(data) {
    document.getElementById("ahead").textContent =
      data.ahead === undefined ? "…" : data.ahead.toLocaleString();
    document.getElementById("eta").textContent =
      data.etaSeconds === null || data.etaSeconds === undefined ? "soon" : `in about ${Math.ceil(data.etaSeconds)} s`;
  }

  const OUTCOMES = {
    SUCCESS: "You won! 🎉",
    FAIL: "Sorry — all gone before your turn.",
    DUPLICATE: "You had already taken part: this click did not count again.",
  };

  function outcome(data) {
    say(data.status, OUTCOMES[data.status]);
    document.getElementById("ahead").textContent = "0";
    document.getElementById("eta").textContent = `decided: you were number ${data.place}`;
    button.hidden = true;
  }

  const pause = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

  function retryAfter(response) {
    return Math.min(Math.max(Number(response.headers.get("Retry-After")) || 1, 1), 30);
  }

  async function follow(accepted) {  // the long-poll: each GET is held until the decision or WAIT_S
    const query = `partition=${accepted.partition}&offset=${accepted.offset}&waitSeconds=${WAIT_S}`;
    const url = `${base}/${encodeURIComponent(accepted.requestId)}?${query}`;
    for (;;) {
      let response;
      try {
        response = await fetch(url, { cache: "no-store" });
      } catch (error) {
        say("PENDING", "Waiting for the connection…");
        await pause(2);
        continue;
      }
      if (response.ok) {
        const data = (await response.json()).data;
        if (data.status !== "PENDING") return outcome(data);
        say("PENDING", "You are in line.");
        showLine(data);
      } else if (response.status === 404 || response.status === 422) {  // not a request of this door (any more)
        store.removeItem(`fcfs-request-${campaign}`);
        ticket.hidden = true;
        button.disabled = false;
        return say("READY", "First come, first served: one try per person.");
      } else {
        say("PENDING", "Still in line (the server is busy)…");
        await pause(retryAfter(response));
      }
    }
  }

  async function takePart() {
    if (jwt && !token) {
      say("ERROR", "Sign in on the site that shows this page first.");
      return;
    }
    button.disabled = true;
    say("SENDING", "Sending…");
    const headers = { "Content-Type": "application/json", "Idempotency-Key": idempotencyKey() };
    if (jwt) headers.Authorization = `Bearer ${token}`;
    const body = jwt ? "{}" : JSON.stringify({ userId: userId() });
    for (let attempt = 0; ; attempt++) {
      let response;
      try {
        response = await fetch(base, { method: "POST", headers, body });
      } catch (error) {
        response = null;
      }
      if (response && response.status === 202) {
        const accepted = (await response.json()).data;
        store.setItem(`fcfs-request-${campaign}`, JSON.stringify(accepted));
        showTicket(accepted);
        say("PENDING", "You are in line.");
        return follow(accepted);
      }
      const answer = response ? await response.json().catch(() => ({})) : {};
      if (response && answer.errorCode === "CAMPAIGN_PAUSED") {  // the organisers paused it: wait, then again
        say("PAUSED", "Paused by the organisers for a moment: your click is kept, trying again…");
        attempt = -1;  // a pause is not a failure: the tries start again after it
        await pause(retryAfter(response));
        continue;
      }
      const retry = !response || response.status === 503 || response.status === 429;
      if (!retry || attempt >= 5) {
        say("ERROR", answer.message || "Could not take part: try again.");
        button.disabled = false;
        return;
      }
      say("SENDING", "Busy: trying again…");
      await pause(response ? retryAfter(response) : 1);  // the same Idempotency-Key: still one request
    }
  }

  button.addEventListener("click", takePart);
  const earlier = store.getItem(`fcfs-request-${campaign}`);
  if (earlier) {  // a reload after the click: the same request, followed again
    const accepted = JSON.parse(earlier);
    button.disabled = true;
    showTicket(accepted);
    say("PENDING", "You are in line.");
    follow(accepted);
  }
})();
