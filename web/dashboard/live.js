// The live feed: /ws/items, reconnecting by itself with a growing delay (0.5 s to 10 s)
// after the server goes away; onStatus("live" | "offline" | "connecting"), and onOpen
// after every (re)connection so that the page can catch up with what it missed.

import { token } from "./api.js";
import { parseEvent } from "./parse.js";

export function follow({ onEvent, onStatus, onOpen }) {
  let delay = 500;
  let everOpen = false;
  function open() {
    const url = new URL("/ws/items", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.hash = "";
    const sent = token();
    if (sent) url.searchParams.set("token", sent);
    onStatus(everOpen ? "offline" : "connecting");
    const ws = new WebSocket(url);
    ws.addEventListener("open", () => {
      delay = 500;
      const again = everOpen;
      everOpen = true;
      onStatus("live");
      onOpen(again);
    });
    ws.addEventListener("message", (event) => {
      const parsed = parseEvent(event.data);
      if (parsed) onEvent(parsed);
    });
    ws.addEventListener("close", () => {
      onStatus("offline");
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    });
  }
  open();
}
