// Verifies one delivered PayPal REST webhook event with PayPal's own Node
// SDK (paypal-rest-sdk): node verify.js HEADERS.json BODY WEBHOOK_ID. The
// SDK gets a token and calls the verify API on api.sandbox.paypal.com,
// which ipnlab's proxy answers. Prints the verification status.
'use strict';
const fs = require('fs');
const paypal = require('paypal-rest-sdk');

const [headersFile, bodyFile, webhookId] = process.argv.slice(2);
paypal.configure({ mode: 'sandbox', client_id: process.env.PAYPAL_CLIENT_ID, client_secret: process.env.PAYPAL_CLIENT_SECRET });
const headers = JSON.parse(fs.readFileSync(headersFile, 'utf8'));
const body = fs.readFileSync(bodyFile, 'utf8');
paypal.notification.webhookEvent.verify(headers, body, webhookId, (err, res) => {
  if (err) {
    console.error(JSON.stringify(err.response || err.message || err));
    process.exit(2);
  }
  console.log(res.verification_status);
});
