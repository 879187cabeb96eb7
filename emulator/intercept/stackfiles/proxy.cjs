// ipnlab's preload for Node before 24, whose https module does not read
// HTTPS_PROXY: it tunnels https requests through the proxy HTTPS_PROXY
// names (CONNECT), for the hosts NO_PROXY does not exempt. Node 24 and
// later do this themselves with NODE_USE_ENV_PROXY=1, and this file then
// does nothing. Loaded with NODE_OPTIONS=--require; it needs no package.
'use strict';
const http = require('http');
const https = require('https');
const tls = require('tls');

const major = Number(process.versions.node.split('.')[0]);
const proxyEnv = process.env.HTTPS_PROXY || process.env.https_proxy;

function exempt(host) {
  const list = (process.env.NO_PROXY || process.env.no_proxy || '').split(',').map((h) => h.trim().toLowerCase()).filter(Boolean);
  host = String(host || '').toLowerCase().replace(/^\[|\]$/g, '');
  return list.some((h) => h === '*' || host === h || (h.startsWith('.') && host.endsWith(h)) || host.endsWith('.' + h));
}

if (proxyEnv && !(major >= 24 && process.env.NODE_USE_ENV_PROXY)) {
  const proxy = new URL(proxyEnv);
  class TunnelAgent extends https.Agent {
    createConnection(options, callback) {
      const host = options.host || options.hostname;
      const port = options.port || 443;
      if (exempt(host)) {
        return super.createConnection(options, callback);
      }
      const req = http.request({
        host: proxy.hostname.replace(/^\[|\]$/g, ''),
        port: proxy.port || 80,
        method: 'CONNECT',
        path: `${host}:${port}`,
        headers: { host: `${host}:${port}` },
        agent: false,
      });
      req.once('connect', (res, socket) => {
        if (res.statusCode !== 200) {
          socket.destroy();
          callback(new Error(`proxy ${proxy.host} refused CONNECT ${host}:${port}: HTTP ${res.statusCode}`));
          return;
        }
        callback(null, tls.connect({ ...options, socket, servername: options.servername || host }));
      });
      req.once('error', callback);
      req.end();
      return undefined;
    }
  }
  const agent = new TunnelAgent({ keepAlive: true });
  https.globalAgent = agent;
  // Modules that captured https.request's default agent before this ran
  // are none: this file is preloaded.
}
