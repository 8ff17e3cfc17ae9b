// Run a MicroPython script in the 32-bit WebAssembly port (31-bit small ints,
// like a microcontroller). usage: node run_wasm.mjs FIRMWARE_DIR SCRIPT
// The firmware package (FIRMWARE_DIR/mbfw/*.py) is copied into the port's
// in-memory filesystem under /fw. Prints the script's stdout; exit 1 on error.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const [fwDir, script] = process.argv.slice(2);
let out = "";
const mp = await loadMicroPython({ stdout: (s) => { out += s + "\n"; }, stderr: (s) => { out += s + "\n"; } });
mp.FS.mkdir("/fw");
mp.FS.mkdir("/fw/mbfw");
for (const name of readdirSync(join(fwDir, "mbfw"))) {
  if (name.endsWith(".py")) mp.FS.writeFile(`/fw/mbfw/${name}`, readFileSync(join(fwDir, "mbfw", name)));
}
let code = 0;
try {
  mp.runPython("import sys\nsys.path.insert(0, '/fw')\n" + readFileSync(script, "utf8"));
} catch (e) {
  out += `ERROR ${e.type || ""} ${e.message}\n`;
  code = 1;
}
process.stdout.write(out);
process.exit(code);
