// Native libraries imported `with { type: "file" }` resolve to a path (embedded in the compiled binary).
declare module "*.so" {
  const path: string;
  export default path;
}
declare module "*.so.1" {
  const path: string;
  export default path;
}
declare module "*.safetensors" {
  const path: string;
  export default path;
}
