// Verifies webhook messages with the official standardwebhooks library, as
// a receiver would. Usage: node checks/standardwebhooks.mjs CASES.json
// where the file holds [{secret, headers, body}]; prints, per case, "ok" or
// the library's error.
import { readFileSync } from "node:fs";
import { Webhook } from "standardwebhooks";

const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));
const out = cases.map(({ secret, headers, body }) => {
  try {
    new Webhook(secret).verify(body, headers);
    return "ok";
  } catch (e) {
    return `${e.name}: ${e.message}`;
  }
});
console.log(JSON.stringify(out));
