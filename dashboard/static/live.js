// Live updates through GraphQL subscriptions over WebSocket at /graphql, speaking the
// graphql-transport-ws protocol: connection_init (with the bearer token) → connection_ack,
// subscribe → next… / error / complete, ping ↔ pong. Reconnects with a growing pause;
// a token refused (4401) is refreshed first. After a reconnect, ``onResume`` tells the
// view to read afresh, since changes may have been missed meanwhile.

import { accessToken, refresh, signedIn } from "./auth.js";

const UNAUTHORIZED = 4401;
const url = (() => {
  const address = new URL("graphql", new URL(".", document.baseURI));
  address.protocol = address.protocol === "https:" ? "wss:" : "ws:";
  return address.href;
})();

export class Live {
  constructor({ onState = () => {}, onResume = () => {} } = {}) {
    this.onState = onState;
    this.onResume = onResume;
    this.subscriptions = new Map(); // id -> {payload, onNext, onError}
    this.socket = null;
    this.acknowledged = false;
    this.closed = false;
    this.pause = 1000;
    this.counter = 0;
    this.connectedBefore = false;
    this.timer = null;
  }

  subscribe(query, variables, onNext, onError = () => {}) {
    const id = `s${++this.counter}`;
    this.subscriptions.set(id, { payload: { query, variables }, onNext, onError });
    if (this.acknowledged) this.send({ id, type: "subscribe", payload: { query, variables } });
    else this.connect();
    return () => this.unsubscribe(id);
  }

  unsubscribe(id) {
    if (this.subscriptions.delete(id) && this.acknowledged) this.send({ id, type: "complete" });
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.subscriptions.clear();
    if (this.socket) this.socket.close(1000, "done");
    this.onState("Not connected");
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  connect() {
    if (this.closed || this.socket || !signedIn()) return;
    this.onState("Connecting…");
    const socket = new WebSocket(url, "graphql-transport-ws");
    this.socket = socket;
    const token = accessToken();
    this.token = token;
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${token}` } }));
    });
    socket.addEventListener("message", (event) => this.receive(JSON.parse(event.data)));
    socket.addEventListener("close", (event) => this.lost(event));
  }

  receive(message) {
    if (message.type === "connection_ack") {
      this.acknowledged = true;
      this.pause = 1000;
      this.onState("Live");
      for (const [id, { payload }] of this.subscriptions) this.send({ id, type: "subscribe", payload });
      if (this.connectedBefore) this.onResume();
      this.connectedBefore = true;
    } else if (message.type === "ping") {
      this.send({ type: "pong" });
    } else if (message.type === "next") {
      const subscription = this.subscriptions.get(message.id);
      if (subscription) subscription.onNext(message.payload);
    } else if (message.type === "error") {
      const subscription = this.subscriptions.get(message.id);
      this.subscriptions.delete(message.id);
      if (subscription) subscription.onError(message.payload);
    } else if (message.type === "complete") {
      this.subscriptions.delete(message.id);
    }
  }

  async lost(event) {
    this.socket = null;
    this.acknowledged = false;
    if (this.closed) return;
    this.onState(`Reconnecting (${event.code})…`);
    // The server ends a connection when its token expires: if the page has renewed the
    // token meanwhile, the new one is used; otherwise it is renewed first.
    if (event.code === UNAUTHORIZED && accessToken() === this.token) {
      try {
        await refresh();
      } catch {
        return; // signed out: the page says so
      }
    }
    this.timer = setTimeout(() => this.connect(), this.pause);
    this.pause = Math.min(this.pause * 2, 30000);
  }
}
