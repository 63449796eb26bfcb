// Filled in by the Temporal work: starts one shared dev server for the whole run.
export default async function globalSetup(): Promise<void> {}
