// tlsrec.yaml `env:` -> the variables to add to the app's environment. The environment tlsrec
// itself runs in wins, as with dotenv files: `PORT=4000 tlsrec test` overrides a recorded
// `env: {PORT: "3000"}` for one run without editing the file. Pure.

/** The config's variables that tlsrec's own environment does not set. */
export function configEnvForApp(
  configEnv: Readonly<Record<string, string>>,
  own: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(configEnv)) if (own[name] === undefined) out[name] = value;
  return out;
}
