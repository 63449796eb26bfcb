/** How the CLI prints: tables for people (cli-table3), JSON with --json, one line per error. */
import Table from 'cli-table3';

export interface Column<T> {
  header: string;
  value: (row: T) => unknown;
}

function cell(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (Array.isArray(value)) return value.map(cell).join(', ');
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

export class Output {
  constructor(
    readonly json: boolean,
    private readonly out: NodeJS.WritableStream = process.stdout,
  ) {}

  /** A list: a table, or the raw objects as a JSON array. */
  list<T>(rows: T[], columns: Column<T>[]): void {
    if (this.json) return this.raw(rows);
    const table = new Table({ head: columns.map((c) => c.header), style: { head: [], border: [] } });
    for (const row of rows) table.push(columns.map((c) => cell(c.value(row))));
    this.out.write(`${table.toString()}\n`);
  }

  /** One resource: a two-column field/value table, or the raw object as JSON. */
  show(resource: Record<string, unknown>, fields?: string[]): void {
    if (this.json) return this.raw(resource);
    const table = new Table({ head: ['Field', 'Value'], style: { head: [], border: [] }, wordWrap: true, colWidths: [22, 78] });
    for (const key of fields ?? Object.keys(resource)) table.push([key, cell(resource[key])]);
    this.out.write(`${table.toString()}\n`);
  }

  raw(value: unknown): void {
    this.out.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** A sentence for people; nothing in --json mode (where the JSON answer says it). */
  say(text: string): void {
    if (!this.json) this.out.write(`${text}\n`);
  }
}
