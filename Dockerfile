# The app image: one image for every role (`handoff bot`, `handoff runner`).
# The runner needs a Docker engine: mount its socket or set DOCKER_HOST.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY src ./src
COPY examples ./examples
COPY skills ./skills
ENV NODE_ENV=production HANDOFF_HOST=0.0.0.0 HANDOFF_DATA_DIR=/data
USER node
EXPOSE 3000
ENTRYPOINT ["node", "bin/handoff.js"]
CMD ["bot"]
