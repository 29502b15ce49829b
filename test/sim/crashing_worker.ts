// A worker that dies on its first message, to check that the vectorized env reports crashes.
declare const self: Worker;
self.onmessage = () => {
  throw new Error("simulated crash in a sim worker");
};
