// Node's https module, as PayPal's Node sample posts back.
const https = require('https');
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const body = Buffer.concat(chunks);
  const req = https.request(process.argv[2], {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': body.length, 'User-Agent': 'stack-client/1.0' },
  }, (res) => {
    let out = '';
    res.on('data', (d) => { out += d; });
    res.on('end', () => process.stdout.write(out));
  });
  req.on('error', (err) => { console.error(String(err)); process.exit(1); });
  req.end(body);
});
