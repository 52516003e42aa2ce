// The participant's page: one POST (the click), then the long-poll until the outcome.
// USER_AUTH=none: a user id generated once and kept in this browser (a demo).
// USER_AUTH=jwt: the embedding site gives the user's token, in the address (#token=…) or by
// window.postMessage({type: "fcfs-token", token: "…"}) to this page's frame.
"use strict";
(() => {
  const main = document.getElementById("campaign");
  const campaign = main.dataset.campaign;
  const jwt = main.dataset.auth === "jwt";
  const claims = Number(main.dataset.claim) > 0;  // the campaign's winners must claim (its claimSeconds)
  const button = document.getElementById("take-part");
  const claimButton = document.getElementById("claim");
  const note = document.getElementById("claim-note");
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

  function showPending(data) {  // in line, or held in the pre-queue for the opening (no line yet: its order is made then)
    if (data.preQueued) {
      say("PENDING", "You are in the pre-queue: it is decided at the opening, everyone in it at once.");
      document.getElementById("ahead").textContent = "—";
      document.getElementById("eta").textContent = "at the opening";
    } else {
      say("PENDING", "You are in line.");
      showLine(data);
    }
  }

  const OUTCOMES = {
    SUCCESS: "You won! 🎉",
    FAIL: "Sorry — all gone before your turn.",
    DUPLICATE: "You had already taken part: this click did not count again.",
    RELEASED: "Your win was not claimed in time: it went to the next in line.",
  };
  let settled = false;  // claimed (or too late) on this page: a look-up older than that changes nothing
  const REVISIT_S = 3;  // a decision that may still change (a claim due, a waiting list): looked up again this often

  function showNote(text) {
    note.hidden = !text;
    note.textContent = text || "";
  }

  // the outcome; true while it may still change: a win to claim, or a FAIL on the waiting list of a claims campaign
  function outcome(data) {
    document.getElementById("ahead").textContent = "0";
    if (data.place !== undefined) document.getElementById("eta").textContent = `decided: you were number ${data.place}`;
    button.hidden = true;
    claimButton.hidden = true;
    if (data.status === "SUCCESS" && data.claim && data.claim.state === "CLAIMED") {
      say("CLAIMED", data.promoted ? "You won (a prize passed on to you) and it is yours. 🎉" : "You won, and it is yours. 🎉");
      showNote("Claimed.");
      return false;
    }
    if (data.status === "SUCCESS" && data.claim) {
      say("SUCCESS", data.promoted ? "A prize was passed on to you: you won! 🎉" : OUTCOMES.SUCCESS);
      showNote(`Claim it before ${new Date(data.claim.deadline).toLocaleTimeString()}, or it goes to the next in line.`);
      claimButton.hidden = false;
      claimButton.disabled = false;
      return true;
    }
    say(data.status, OUTCOMES[data.status]);
    if (data.status === "FAIL" && claims) {
      showNote("You are on the waiting list: a prize its winner does not claim in time comes to the next in line.");
      return true;
    }
    showNote(data.status === "RELEASED" ? "" : null);
    return false;
  }

  async function revisit(url) {  // a decided request that may still change: claimed, released, or promoted
    for (;;) {
      await pause(REVISIT_S);
      if (settled) return;
      try {
        const response = await fetch(url, { cache: "no-store" });
        if (response.ok && !settled && !outcome((await response.json()).data)) return;
      } catch (error) {
        // (the connection: next time)
      }
    }
  }

  const pause = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

  function retryAfter(response) {
    return Math.min(Math.max(Number(response.headers.get("Retry-After")) || 1, 1), 30);
  }

  async function follow(accepted) {  // the long-poll: each GET is held until the decision or WAIT_S
    const ticketQuery = `partition=${accepted.partition}&offset=${accepted.offset}`;
    const url = `${base}/${encodeURIComponent(accepted.requestId)}?${ticketQuery}&waitSeconds=${WAIT_S}`;
    for (;;) {
      let response;
      const asked = Date.now();
      try {
        response = await fetch(url, { cache: "no-store" });
      } catch (error) {
        say("PENDING", "Waiting for the connection…");
        await pause(2);
        continue;
      }
      if (response.ok) {
        const data = (await response.json()).data;
        if (data.status !== "PENDING") {
          if (outcome(data)) revisit(`${base}/${encodeURIComponent(accepted.requestId)}?${ticketQuery}`);
          return;
        }
        showPending(data);
        // not held (a server stopping lets its held look-ups go; the database away): not at once again
        if (Date.now() - asked < 1000) await pause(1);
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

  function identity() {  // who takes part (and claims): the token's user, or this browser's user id
    const headers = { "Content-Type": "application/json" };
    if (jwt) headers.Authorization = `Bearer ${token}`;
    return { headers, body: jwt ? "{}" : JSON.stringify({ userId: userId() }) };
  }

  async function claimWin() {
    const accepted = JSON.parse(store.getItem(`fcfs-request-${campaign}`) || "null");
    if (!accepted) return;
    claimButton.disabled = true;
    const { headers, body } = identity();
    let response;
    try {
      response = await fetch(`${base}/${encodeURIComponent(accepted.requestId)}/claim`, { method: "POST", headers, body });
    } catch (error) {
      response = null;
    }
    const answer = response ? await response.json().catch(() => ({})) : {};
    if (response && response.ok) {
      settled = true;
      outcome(answer.data);
    } else if (answer.errorCode === "CLAIM_EXPIRED") {
      settled = true;
      outcome({ status: "RELEASED" });
    } else {
      showNote(answer.message || "Could not claim it: try again.");
      claimButton.disabled = false;
    }
  }

  async function takePart() {
    if (jwt && !token) {
      say("ERROR", "Sign in on the site that shows this page first.");
      return;
    }
    button.disabled = true;
    say("SENDING", "Sending…");
    const { headers: identified, body } = identity();
    const headers = { ...identified, "Idempotency-Key": idempotencyKey() };
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
        showPending(accepted);
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
  claimButton.addEventListener("click", claimWin);
  const earlier = store.getItem(`fcfs-request-${campaign}`);
  if (earlier) {  // a reload after the click: the same request, followed again
    const accepted = JSON.parse(earlier);
    button.disabled = true;
    showTicket(accepted);
    showPending(accepted);
    follow(accepted);
  }
})();
