// The real Node APM agent sends a transaction, a span, an error and metrics, configured only
// with the server URL and a secret token (from the environment), plus settings that keep the
// run short and offline.
const apm = require('elastic-apm-node').start({
  serviceName: 'node-agent-test',
  serviceVersion: '1.0.0',
  environment: 'test',
  serverUrl: process.env.APM_SERVER_URL,
  secretToken: process.env.APM_SECRET_TOKEN,
  metricsInterval: '1s',
  centralConfig: false,
  cloudProvider: 'none',
  captureExceptions: false,
  logLevel: 'warn',
});
const t = apm.startTransaction('GET /probe', 'request');
const s = apm.startSpan('SELECT FROM t', 'db', 'postgresql', 'query');
setTimeout(() => {
  s.end();
  apm.captureError(new Error('boom from the node agent'));
  t.result = 'success';
  t.end();
  setTimeout(() => apm.flush((err) => {
    console.log('node agent done', err || '');
    apm.destroy();
  }), 1500);
}, 10);
