// @hey-api/openapi-ts turns the committed OpenAPI document into a typed
// fetch client (types + one function per operation) in src/client/, which
// is generated, not committed: `npm run generate`.
import { defineConfig } from '@hey-api/openapi-ts';

export default defineConfig({
  input: '../../bindings/openapi.json',
  output: 'src/client',
  plugins: ['@hey-api/client-fetch', '@hey-api/typescript', '@hey-api/sdk'],
});
