// A site's server on npm `bankid` 3.x (BankIdClientV6) pointed at the relay, as
// docs/relay-api.md says: production mode, the party's PKCS#12 client certificate, the
// relay's CA as a file path, and axios's base URL set to the relay's /rp/v6.0/.
//   node bankid-client.cjs BASE PFX PASSPHRASE CA auth|sign TEXT|await REF|cancel REF
// Prints the library's answer as JSON; a failure prints {"error": …} and exits 1.
"use strict";
const { BankIdClientV6 } = require("bankid");

const [base, pfx, passphrase, ca, command, arg] = process.argv.slice(2);
const client = new BankIdClientV6({ production: true, pfx, passphrase, ca, refreshInterval: 250 });
client.axios.defaults.baseURL = base;

async function run() {
  const ip = { endUserIp: "192.0.2.1" };
  switch (command) {
    case "auth":
      return client.authenticate(ip);
    case "sign":
      return client.sign({ ...ip, userVisibleData: arg, userVisibleDataFormat: "simpleMarkdownV1" });
    case "await":
      return client.awaitPendingCollect(arg);
    case "cancel":
      return client.cancel({ orderRef: arg });
    default:
      throw new Error(`unknown command ${command}`);
  }
}

run()
  .then(async (answer) => {
    const { qr, ...rest } = answer;
    if (qr) {
      // the library draws BankID's animated QR from qrStartToken and qrStartSecret
      rest.qrText = (await qr.nextQr(answer.orderRef, { maxCycles: 1 }).next()).value;
    }
    // the QR cache's timer would keep the process alive for a minute
    process.stdout.write(JSON.stringify(rest) + "\n", () => process.exit(0));
  })
  .catch((error) => {
    // the library's BankIdError carries BankID's errorCode and details
    const said = error && error.code ? { errorCode: error.code, details: error.details } : String(error);
    process.stdout.write(JSON.stringify({ error: said }) + "\n", () => process.exit(1));
  });
