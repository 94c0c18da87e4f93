// A real gRPC service (@grpc/grpc-js) and client for fixtures/proto/shop.proto: GetPrice answers a
// price, or NOT_FOUND for sku "missing".

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

export const SHOP_PROTO = fileURLToPath(new URL('../../fixtures/proto/shop.proto', import.meta.url));

interface PriceRequest {
  sku: string;
  quantity: number;
}
interface PriceReply {
  sku: string;
  cents: string;
  currency: string;
  tags: string[];
  detail: { inStock: boolean; weight: number };
}

type PricesClient = grpc.Client & {
  GetPrice(
    req: PriceRequest,
    md: grpc.Metadata,
    cb: (err: grpc.ServiceError | null, reply?: PriceReply) => void,
  ): grpc.ClientUnaryCall;
};

function shopPackage(): { Prices: grpc.ServiceClientConstructor } {
  const def = protoLoader.loadSync(SHOP_PROTO, { keepCase: false, longs: String, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { shop: { v1: { Prices: grpc.ServiceClientConstructor } } };
  return pkg.shop.v1;
}

export function priceFor(req: PriceRequest): PriceReply {
  return {
    sku: req.sku,
    cents: String(1999 * req.quantity),
    currency: 'EUR',
    tags: ['book', 'paper'],
    detail: { inStock: true, weight: 0.25 },
  };
}

export async function startShopServer(): Promise<{ port: number; close(): Promise<void> }> {
  const server = new grpc.Server();
  server.addService(shopPackage().Prices.service, {
    GetPrice: (call: grpc.ServerUnaryCall<PriceRequest, PriceReply>, cb: grpc.sendUnaryData<PriceReply>) => {
      if (call.request.sku === 'missing') cb({ code: grpc.status.NOT_FOUND, details: 'no such sku: missing' });
      else cb(null, priceFor(call.request));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { port, close: () => new Promise<void>((r) => server.tryShutdown(() => r())) };
}

export function shopClient(port: number): {
  getPrice(
    req: PriceRequest,
    md?: Record<string, string>,
  ): Promise<{ reply?: PriceReply; code: number; details?: string }>;
  close(): void;
} {
  const Prices = shopPackage().Prices;
  const client = new Prices(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as PricesClient;
  return {
    getPrice: (req, md = {}) =>
      new Promise((resolve) => {
        const meta = new grpc.Metadata();
        for (const [k, v] of Object.entries(md)) meta.set(k, v);
        client.GetPrice(req, meta, (err, reply) =>
          resolve(err ? { code: err.code, details: err.details } : { reply: reply!, code: 0 }),
        );
      }),
    close: () => client.close(),
  };
}
