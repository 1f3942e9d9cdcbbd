// Type-level check of the sensors bindings with the real @trpc/client types
// (tests/run runs `tsc -p examples/sensors`, using examples/ts-client's
// node_modules). Not executed.
import {
  createTRPCClient,
  httpBatchLink,
  httpSubscriptionLink,
  splitLink,
} from "@trpc/client";
import superjson from "superjson";

import type { AppRouter, Reading, Sensor } from "./bindings";

const url = "http://127.0.0.1:3000/trpc";
const token = "…"; // from auth.login
const trpc = createTRPCClient<AppRouter>({
  links: [
    // Subscriptions as server-sent events; everything else batched.
    splitLink({
      condition: (op) => op.type === "subscription",
      // A browser's EventSource cannot send headers: the token goes in connectionParams.
      true: httpSubscriptionLink({ url, transformer: superjson, connectionParams: () => ({ token }) }),
      false: httpBatchLink({ url, transformer: superjson, headers: () => ({ authorization: `Bearer ${token}` }) }),
    }),
  ],
});

export async function useSensors(): Promise<Sensor[]> {
  const created: Sensor = await trpc.sensors.create.mutate({ name: "Boiler room", unit: "°C" });
  const reading: Reading = await trpc.sensors.record.mutate({ sensorId: created.id, value: 21.5 });
  const latest: Reading[] = await trpc.sensors.readings.query({ sensorId: created.id, limit: 10 });
  void [reading, latest];
  const deleted: { success: true } = await trpc.sensors.delete.mutate({ id: created.id });
  void deleted;
  // The auth procedures are still there beside the app's own.
  await trpc.auth.me.query();
  // @ts-expect-error `unit` is required
  await trpc.sensors.create.mutate({ name: "x" });
  // @ts-expect-error `sensors.list` is a query
  await trpc.sensors.list.mutate();
  // @ts-expect-error `value` is a number
  await trpc.sensors.record.mutate({ sensorId: created.id, value: "21.5" });
  return trpc.sensors.list.query();
}

// Live readings of one sensor. Tracked: each event is `{ id, data }`, and
// on reconnecting the link sends the last id back, so nothing is missed.
export function followSensor(
  sensorId: string,
  onReading: (reading: Reading) => void,
  onFailure: (message: string) => void,
): () => void {
  const subscription = trpc.sensors.onReading.subscribe(
    { sensorId },
    {
      onData: ({ id, data }) => {
        const readingId: string = id;
        void readingId;
        onReading(data);
      },
      onError: (err) => onFailure(err.message),
    },
  );
  // Every sensor's readings: the input may be left out.
  trpc.sensors.onReading.subscribe(undefined, { onData: ({ data }) => onReading(data) }).unsubscribe();
  return () => subscription.unsubscribe();
}
