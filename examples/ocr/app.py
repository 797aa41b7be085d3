# A small FastAPI OCR service for the tollgate example: POST /ocr with an
# image upload answers the text Tesseract reads in it.
#
#   apt-get install -y tesseract-ocr
#   pip install fastapi uvicorn python-multipart pillow pytesseract
#   uvicorn app:app --host 127.0.0.1 --port 8000
import io

import pytesseract
from fastapi import FastAPI, File, Header, HTTPException, UploadFile
from PIL import Image, UnidentifiedImageError

app = FastAPI(title="OCR")


@app.get("/health")
def health():
    return {"status": "ok"}


@app.post("/ocr")
async def ocr(file: UploadFile = File(...), x_user_id: str = Header(default="")):
    # tollgate removes any X-User-ID a client sends and sets it from the
    # verified token, so the app may trust it when it listens on 127.0.0.1.
    try:
        image = Image.open(io.BytesIO(await file.read()))
    except UnidentifiedImageError:
        raise HTTPException(status_code=422, detail="the upload is not an image")
    text = pytesseract.image_to_string(image)
    return {"user": x_user_id, "filename": file.filename, "text": text}
