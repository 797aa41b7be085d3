// tollgate adds this script to the pages of a route that a browser opened
// with its session cookie (ComfyUI's or Gradio's own UI, say). It sends the
// session's CSRF token, from <meta name="csrf-token">, with the page's own
// state-changing requests to this origin: fetch and XMLHttpRequest. The
// token never goes to another origin. Websockets need none: the gateway
// checks their Origin.
(() => {
  "use strict";
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (!meta || !meta.content) return;
  const token = meta.content;
  const header = "X-CSRF-Token";
  const safe = (method) => /^(GET|HEAD|OPTIONS)$/i.test(method || "GET");
  // A relative URL is resolved as the browser resolves it: against the
  // document's base URL, which a <base href> may put on another origin.
  const sameOrigin = (url) => {
    try {
      return new URL(url, document.baseURI).origin === location.origin;
    } catch {
      return false;
    }
  };

  const fetchOriginal = window.fetch;
  window.fetch = function (input, init) {
    const req = input instanceof Request ? input : null;
    const method = (init && init.method) || (req ? req.method : "GET");
    const url = req ? req.url : String(input);
    if (safe(method) || !sameOrigin(url)) return fetchOriginal.call(this, input, init);
    const headers = new Headers((init && init.headers) || (req ? req.headers : undefined));
    headers.set(header, token);
    return fetchOriginal.call(this, input, { ...init, headers });
  };

  const marked = new WeakSet();
  const open = XMLHttpRequest.prototype.open;
  XMLHttpRequest.prototype.open = function (method, url, ...rest) {
    if (!safe(method) && sameOrigin(url)) marked.add(this);
    else marked.delete(this);
    return open.call(this, method, url, ...rest);
  };
  const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (body) {
    if (marked.has(this)) this.setRequestHeader(header, token);
    return send.call(this, body);
  };
})();
