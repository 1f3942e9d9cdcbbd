// Type-level check of the sensors bindings with the real @trpc/client types
// (tests/run runs `tsc -p examples/sensors`, using examples/ts-client's
// node_modules). Not executed.
import { createTRPCClient, httpBatchLink } from "@trpc/client";
import superjson from "superjson";

import type { AppRouter, Sensor } from "./bindings";

const trpc = createTRPCClient<AppRouter>({
  links: [httpBatchLink({ url: "http://127.0.0.1:3000/trpc", transformer: superjson })],
});

export async function useSensors(): Promise<Sensor[]> {
  const created: Sensor = await trpc.sensors.create.mutate({ name: "Boiler room", unit: "°C" });
  const deleted: { success: true } = await trpc.sensors.delete.mutate({ id: created.id });
  void deleted;
  // The auth procedures are still there beside the app's own.
  await trpc.auth.me.query();
  // @ts-expect-error `unit` is required
  await trpc.sensors.create.mutate({ name: "x" });
  // @ts-expect-error `sensors.list` is a query
  await trpc.sensors.list.mutate();
  return trpc.sensors.list.query();
}
