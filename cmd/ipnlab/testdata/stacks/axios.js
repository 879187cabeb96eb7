// axios, as npm IPN packages post back.
const axios = require('axios');
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', async () => {
  try {
    const res = await axios.post(process.argv[2], Buffer.concat(chunks).toString(), {
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'User-Agent': 'stack-client/1.0' },
      responseType: 'text', timeout: 10000,
    });
    process.stdout.write(res.data);
  } catch (err) {
    console.error(String(err));
    process.exit(1);
  }
});
